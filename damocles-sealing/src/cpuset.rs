//! CPU sets as the kernel writes them (`0-11,24-35`): parsed once, where the configuration
//! is read, so that a typo fails the worker's start instead of a child's binding.

use std::fmt;

/// A set of CPU numbers, ascending and without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet(Vec<usize>);

/// Why a CPU list does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuSetError {
    /// A part is not a CPU number (0 to 8191) or a range of them.
    #[error("{part:?} in {text:?} is not a CPU number (0 to {MAX_CPU}) or range like 0-11")]
    NotACpu {
        /// The part, e.g. `x` of `0,x`.
        part: String,
        /// The whole list.
        text: String,
    },
    /// A range's first CPU is above its last.
    #[error("range {part:?} in {text:?} runs backwards")]
    Backwards {
        /// The range, e.g. `5-2`.
        part: String,
        /// The whole list.
        text: String,
    },
}

/// The highest CPU number accepted (the kernel's default `NR_CPUS` limit).
const MAX_CPU: usize = 8191;

impl CpuSet {
    /// Parses a list of CPUs and ranges, e.g. `0-11,24-35` or `3`.
    ///
    /// # Errors
    /// [`CpuSetError`], naming the part that is not a CPU number or an ascending range.
    pub fn parse(text: &str) -> Result<Self, CpuSetError> {
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim) {
            let number = |s: &str| -> Result<usize, CpuSetError> {
                s.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n <= MAX_CPU)
                    .ok_or_else(|| CpuSetError::NotACpu {
                        part: part.to_owned(),
                        text: text.to_owned(),
                    })
            };
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let n = number(part)?;
                    (n, n)
                }
            };
            if first > last {
                return Err(CpuSetError::Backwards {
                    part: part.to_owned(),
                    text: text.to_owned(),
                });
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(Self(cpus))
    }

    /// The CPU numbers.
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }
}

impl FromIterator<usize> for CpuSet {
    /// The set of these CPU numbers (sorted, repeats dropped).
    fn from_iter<I: IntoIterator<Item = usize>>(cpus: I) -> Self {
        let mut cpus: Vec<usize> = cpus.into_iter().collect();
        cpus.sort_unstable();
        cpus.dedup();
        Self(cpus)
    }
}

impl fmt::Display for CpuSet {
    /// The kernel's list form, ranges joined (`0-3,8`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_single_cpus_parse_and_print_in_the_kernels_form() {
        let set = CpuSet::parse("8, 0-3,2").expect("valid");
        assert_eq!(set.cpus(), &[0, 1, 2, 3, 8]);
        assert_eq!(set.to_string(), "0-3,8");
    }

    #[test]
    fn bad_parts_are_named() {
        let e = CpuSet::parse("0-3,x").expect_err("x is no CPU");
        assert!(e.to_string().contains("\"x\""), "{e}");
        let e = CpuSet::parse("5-2").expect_err("backwards");
        assert!(e.to_string().contains("backwards"), "{e}");
        assert!(CpuSet::parse("").is_err());
        assert!(CpuSet::parse("99999").is_err());
    }
}
