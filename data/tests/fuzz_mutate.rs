//! The byte mutations of the fuzz tests (shared with the workspace's `tests/train/fuzz.rs`).

use data::rng::Rng;

const INTERESTING_U32: [u32; 8] = [0, 1, 0x7f, 0xff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];

/// One to four random mutations of `seed`.
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len().max(1) as u64;
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(len) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(len) as usize;
                v[i] = [0u8, 0xff, 0x7f, 0x80, b'\n', b' ', b'"'][rng.below(7) as usize];
            }
            2 if v.len() >= 4 => {
                let i = rng.below(v.len() as u64 - 3) as usize;
                let x = INTERESTING_U32[rng.below(8) as usize];
                let bytes = if rng.coin() { x.to_le_bytes() } else { x.to_be_bytes() };
                v[i..i + 4].copy_from_slice(&bytes);
            }
            3 => v.truncate(rng.below(len + 1) as usize),
            4 => v.extend((0..rng.below(64)).map(|_| rng.below(256) as u8)),
            5 if !v.is_empty() => {
                let a = rng.below(len) as usize;
                let b = (a + rng.below(64) as usize).min(v.len());
                let block = v[a..b].to_vec();
                let at = rng.below(v.len() as u64 + 1) as usize;
                v.splice(at..at, block);
            }
            _ => {
                // Early bytes hold magic numbers and sizes: hit them more often.
                if !v.is_empty() {
                    let i = rng.below(len.min(64)) as usize;
                    v[i] = rng.below(256) as u8;
                }
            }
        }
    }
    v
}
