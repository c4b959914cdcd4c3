//! How the configuration's values are read: TOML into a section with the keys it did not
//! know, a manager address or a list of them, values parsed from strings (`"2KiB"`).

use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::ConfigError;

/// Deserializes TOML text into `T`, with the dotted keys it did not know; a value of the
/// wrong kind (or text that is not TOML) is [`ConfigError::Invalid`] naming the key and
/// the line.
pub(crate) fn deserialize_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
) -> Result<(T, Vec<String>), ConfigError> {
    let mut unknown = Vec::new();
    let deserializer = toml::Deserializer::new(text);
    let mut note_unknown = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let ignoring = serde_ignored::Deserializer::new(deserializer, &mut note_unknown);
    let value: T = serde_path_to_error::deserialize(ignoring).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = match inner.span() {
            Some(span) => format!("{} (line {})", inner.message(), line_of(text, span.start)),
            None => inner.message().to_owned(),
        };
        ConfigError::Invalid {
            path: origin.to_owned(),
            key: if key == "." {
                "TOML syntax".into()
            } else {
                key
            },
            message,
        }
    })?;
    Ok((value, unknown))
}

/// A string, or a list of strings joined with commas.
pub(super) fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct OneOrMany;
    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a manager address (\"/ip4/127.0.0.1/tcp/1789\") or a list of them")
        }
        fn visit_str<E: serde::de::Error>(self, one: &str) -> Result<String, E> {
            Ok(one.to_owned())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<String, A::Error> {
            let mut many: Vec<String> = Vec::new();
            while let Some(one) = seq.next_element::<String>()? {
                many.push(one);
            }
            if many.is_empty() {
                return Err(serde::de::Error::custom("an empty list names no manager"));
            }
            Ok(many.join(","))
        }
    }
    deserializer.deserialize_any(OneOrMany)
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

pub(super) fn from_str_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Option::<String>::deserialize(deserializer)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

pub(super) fn from_str_list<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Option::<Vec<String>>::deserialize(deserializer)?
        .map(|list| {
            list.iter()
                .map(|s| s.parse().map_err(serde::de::Error::custom))
                .collect()
        })
        .transpose()
}
