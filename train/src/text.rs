//! Values written as text in `config.json` and on the command line (`"step:60,120,160:0.2"`,
//! `"cuda:0"`, `"ce"`, `"none"`): serde goes through their `Display` and `FromStr`, so the file
//! says what the flag said.

/// Implements `Serialize` and `Deserialize` for types with `Display` and `FromStr`.
macro_rules! serde_as_text {
    ($($t:ty),* $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

pub(crate) use serde_as_text;
