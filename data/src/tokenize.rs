//! Penn Treebank tokenisation of one sentence, as the `tokenizer.sed` script the paper's SNLI
//! pipeline (InferSent) runs: the same rules, applied in the same order, each replacing matches
//! left to right without overlap, as `sed s///g` does.

/// Scans `s` left to right; where `rule(chars, i)` matches `len` chars it emits the replacement and
/// continues after the match.
fn pass(s: &str, rule: impl Fn(&[char], usize) -> Option<(usize, String)>) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while i < c.len() {
        match rule(&c, i) {
            Some((len, rep)) => {
                out.push_str(&rep);
                i += len.max(1);
            }
            None => {
                out.push(c[i]);
                i += 1;
            }
        }
    }
    out
}

fn starts(c: &[char], i: usize, lit: &str) -> bool {
    (i..).zip(lit.chars()).all(|(k, ch)| c.get(k) == Some(&ch))
}

/// The tokens of `sentence`.
pub fn ptb_tokenize(sentence: &str) -> Vec<String> {
    // Directional open quotes.
    let mut s = match sentence.strip_prefix('"') {
        Some(rest) => format!("`` {rest}"),
        None => sentence.to_string(),
    };
    s = pass(&s, |c, i| (" ([{<".contains(c[i]) && c.get(i + 1) == Some(&'"')).then(|| (2, format!("{} `` ", c[i]))));
    s = pass(&s, |c, i| starts(c, i, "...").then(|| (3, " ... ".into())));
    s = pass(&s, |c, i| ",;:@#$%&".contains(c[i]).then(|| (1, format!(" {} ", c[i]))));
    s = split_final_period(&s);
    s = pass(&s, |c, i| "?!".contains(c[i]).then(|| (1, format!(" {} ", c[i]))));
    s = pass(&s, |c, i| "[](){}<>".contains(c[i]).then(|| (1, format!(" {} ", c[i]))));
    s = pass(&s, |c, i| starts(c, i, "--").then(|| (2, " -- ".into())));
    s = format!(" {s} ");
    s = pass(&s, |c, i| (c[i] == '"').then(|| (1, " '' ".into())));
    // Possessive or closing single quote.
    s = pass(&s, |c, i| {
        (c[i] != '\'' && c.get(i + 1) == Some(&'\'') && c.get(i + 2) == Some(&' ')).then(|| (3, format!("{} ' ", c[i])))
    });
    s = pass(&s, |c, i| {
        (c[i] == '\'' && c.get(i + 1).is_some_and(|x| "sSmMdD".contains(*x)) && c.get(i + 2) == Some(&' '))
            .then(|| (3, format!(" '{} ", c[i + 1])))
    });
    for suffix in ["'ll ", "'re ", "'ve ", "n't ", "'LL ", "'RE ", "'VE ", "N'T "] {
        s = pass(&s, |c, i| starts(c, i, suffix).then(|| (suffix.chars().count(), format!(" {suffix}"))));
    }
    // Contractions written as one word: " cannot " -> " can not ", ...
    s = contractions(&s);
    s.split(' ').filter(|t| !t.is_empty()).map(str::to_string).collect()
}

/// `([^.])([.])([])}>"']*)[ \t]*$` -> `\1 \2\3 `: a sentence-final period is split off.
fn split_final_period(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut end = c.len();
    while end > 0 && (c[end - 1] == ' ' || c[end - 1] == '\t') {
        end -= 1;
    }
    let mut dot = end;
    while dot > 0 && "])}>\"'".contains(c[dot - 1]) {
        dot -= 1;
    }
    if dot >= 2 && c[dot - 1] == '.' && c[dot - 2] != '.' {
        let head: String = c[..dot - 1].iter().collect();
        let tail: String = c[dot - 1..end].iter().collect();
        return format!("{head} {tail} ");
    }
    s.to_string()
}

/// The sed rules ` ([Cc])annot ` -> ` \1an not ` and its siblings.
fn contractions(s: &str) -> String {
    // (first letters, rest of the word, where the space goes in the rest)
    const RULES: [(&str, &str, usize); 10] = [
        ("Cc", "annot", 2),
        ("Dd", "'ye", 1),
        ("Gg", "imme", 2),
        ("Gg", "onna", 2),
        ("Gg", "otta", 2),
        ("Ll", "emme", 2),
        ("Mm", "ore'n", 3),
        ("Tt", "is", 0),
        ("Tt", "was", 0),
        ("Ww", "anna", 2),
    ];
    let mut s = s.to_string();
    for (k, (first, rest, at)) in RULES.iter().enumerate() {
        // 'tis and 'twas start with a quote: " '([Tt])is " -> " '\1 is ".
        let quoted = k == 7 || k == 8;
        s = pass(&s, |c, i| {
            if c[i] != ' ' {
                return None;
            }
            let mut j = i + 1;
            if quoted {
                if c.get(j) != Some(&'\'') {
                    return None;
                }
                j += 1;
            }
            let f = *c.get(j)?;
            if !first.contains(f) || !starts(c, j + 1, rest) {
                return None;
            }
            let end = j + 1 + rest.chars().count();
            if c.get(end) != Some(&' ') {
                return None;
            }
            let r: Vec<char> = rest.chars().collect();
            let (a, b): (String, String) = (r[..*at].iter().collect(), r[*at..].iter().collect());
            let q = if quoted { "'" } else { "" };
            Some((end + 1 - i, format!(" {q}{f}{a} {b} ")))
        });
    }
    s
}
