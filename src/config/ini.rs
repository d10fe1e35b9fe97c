//! Port of Python 2.7's `ConfigParser.SafeConfigParser` (with `dict_type=OrderedDict`),
//! the INI reader both generations' layer.py use: `_read`, `sections`, `has_section`,
//! `has_option`, `get` with `%(name)s` interpolation (`_interpolate_some`).
//!
//! Rules reproduced from 2.7.18: lines split at `\n` only; blank lines and lines whose
//! first byte is `#` or `;` are skipped, as are lines whose first word is `rem` (any
//! case) and whose first byte is `r`/`R`; a line starting with whitespace continues the
//! last option (even across blank and comment lines), so an indented `# text` becomes
//! part of the value; `[header]` takes everything up to the first `]` and ignores the
//! rest of the line; option names are lower-cased (ASCII only), section names are not;
//! an inline `;` starts a comment only if it is the first `;` and follows whitespace
//! (Python looks at `value[pos-1]`, which for `pos == 0` is the last byte); `""` means
//! empty; a repeated section merges and a repeated option replaces the value but keeps
//! its place; every section holds an implicit `__name__`; options of `[DEFAULT]` are
//! visible in every section. Bad lines are collected and reported together at the end
//! (`ParsingError`), a first option before any header is `MissingSectionHeaderError`.

use super::py::{is_space, strip};
use indexmap::IndexMap;
use std::fmt;

const DEFAULT_SECT: &str = "DEFAULT";
const MAX_INTERPOLATION_DEPTH: usize = 10;

type Options = IndexMap<String, String>;

/// A parsed INI file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ini {
    sections: IndexMap<String, Options>,
    defaults: Options,
}

/// Why a file could not be read (the exceptions of `RawConfigParser._read`).
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// `MissingSectionHeaderError`: an option line before any `[section]`.
    MissingSectionHeader { line_no: usize, line: String },
    /// `ParsingError`: every line that is neither header, option nor continuation.
    Parsing { lines: Vec<(usize, String)> },
}

/// Why `get` failed (`NoSectionError`, `NoOptionError`, `InterpolationError`s).
#[derive(Debug, Clone, PartialEq)]
pub enum GetError {
    NoSection,
    NoOption,
    /// `InterpolationSyntaxError`, `InterpolationMissingOptionError` or
    /// `InterpolationDepthError`, with the original's class name and detail.
    Interpolation {
        class: &'static str,
        detail: String,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            ReadError::MissingSectionHeader { line_no, line } => {
                write!(
                    f,
                    "file contains no section headers (line {line_no}: {})",
                    super::py::repr_str(line)
                )
            }
            ReadError::Parsing { lines } => {
                write!(f, "file contains parsing errors:")?;
                for (n, l) in lines {
                    write!(f, " [line {n:2}]: {}", super::py::repr_str(l))?;
                }
                Ok(())
            }
        }
    }
}

impl Ini {
    /// `RawConfigParser._read` over the whole text (latin-1 chars, one per byte).
    pub fn parse(text: &str) -> Result<Ini, ReadError> {
        let mut sections: IndexMap<String, RawOptions> = IndexMap::new();
        let mut defaults = RawOptions::new();
        let mut cursect: Option<Option<String>> = None; // Some(None) = DEFAULT
        let mut optname: Option<String> = None;
        let mut bad = Vec::new();
        for (idx, line) in text.split_inclusive('\n').enumerate() {
            let line_no = idx + 1;
            let first = line.chars().next().unwrap_or('\n');
            if strip(line).is_empty() || first == '#' || first == ';' {
                continue;
            }
            let first_word = line.split(is_space).find(|w| !w.is_empty()).unwrap_or("");
            if first_word.eq_ignore_ascii_case("rem") && (first == 'r' || first == 'R') {
                continue;
            }
            if let (true, Some(cur), Some(opt)) = (is_space(first), &cursect, &optname) {
                let value = strip(line);
                if !value.is_empty() {
                    let sect = current(cur, &mut sections, &mut defaults);
                    sect.get_mut(opt)
                        .expect("the option being continued exists")
                        .push(value.to_string());
                }
                continue;
            }
            if let Some(header) = section_header(line) {
                if header == DEFAULT_SECT {
                    cursect = Some(None);
                } else {
                    if !sections.contains_key(header) {
                        let mut opts = IndexMap::new();
                        opts.insert("__name__".to_string(), vec![header.to_string()]);
                        sections.insert(header.to_string(), opts);
                    }
                    cursect = Some(Some(header.to_string()));
                }
                optname = None;
                continue;
            }
            let Some(cur) = cursect.as_ref() else {
                return Err(ReadError::MissingSectionHeader {
                    line_no,
                    line: line.to_string(),
                });
            };
            match option_line(line) {
                Some((name, value)) => {
                    current(cur, &mut sections, &mut defaults).insert(name.clone(), vec![value]);
                    optname = Some(name);
                }
                None => bad.push((line_no, line.to_string())),
            }
        }
        if !bad.is_empty() {
            return Err(ReadError::Parsing { lines: bad });
        }
        let join = |opts: RawOptions| -> Options {
            opts.into_iter().map(|(k, v)| (k, v.join("\n"))).collect()
        };
        Ok(Ini {
            sections: sections.into_iter().map(|(k, v)| (k, join(v))).collect(),
            defaults: join(defaults),
        })
    }

    /// `sections()`: names in order of first appearance, without `DEFAULT`.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// `has_option`: the section's own options or `[DEFAULT]`'s.
    pub fn has_option(&self, section: &str, option: &str) -> bool {
        let option = option.to_ascii_lowercase();
        if section.is_empty() || section == DEFAULT_SECT {
            return self.defaults.contains_key(&option);
        }
        match self.sections.get(section) {
            Some(opts) => opts.contains_key(&option) || self.defaults.contains_key(&option),
            None => false,
        }
    }

    /// The raw (uninterpolated) options of a section in file order, `__name__` included.
    pub fn raw_options(&self, section: &str) -> Option<&IndexMap<String, String>> {
        if section == DEFAULT_SECT {
            return Some(&self.defaults);
        }
        self.sections.get(section)
    }

    fn lookup<'s>(&'s self, section: Option<&'s Options>, option: &str) -> Option<&'s str> {
        section
            .and_then(|s| s.get(option))
            .or_else(|| self.defaults.get(option))
            .map(String::as_str)
    }

    /// `SafeConfigParser.get(section, option)`: the value with `%(name)s` expanded.
    pub fn get(&self, section: &str, option: &str) -> Result<String, GetError> {
        let sect = match self.sections.get(section) {
            Some(s) => Some(s),
            None if section == DEFAULT_SECT => None,
            None => return Err(GetError::NoSection),
        };
        let option = option.to_ascii_lowercase();
        let raw = self.lookup(sect, &option).ok_or(GetError::NoOption)?;
        let mut out = String::new();
        self.interpolate(sect, &option, section, raw, 1, &mut out)?;
        Ok(out)
    }

    /// `_interpolate_some`: `%%` is a literal `%`, `%(name)s` is looked up in the
    /// section then `[DEFAULT]` and expanded again if it contains `%`.
    fn interpolate(
        &self,
        sect: Option<&Options>,
        option: &str,
        section: &str,
        mut rest: &str,
        depth: usize,
        out: &mut String,
    ) -> Result<(), GetError> {
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(GetError::Interpolation {
                class: "InterpolationDepthError",
                detail: format!("Value interpolation too deeply recursive: section: [{section}] option : {option}"),
            });
        }
        while !rest.is_empty() {
            let Some(p) = rest.find('%') else {
                out.push_str(rest);
                return Ok(());
            };
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            let syntax = |detail: String| GetError::Interpolation {
                class: "InterpolationSyntaxError",
                detail,
            };
            match rest[1..].chars().next() {
                Some('%') => {
                    out.push('%');
                    rest = &rest[2..];
                }
                Some('(') => {
                    let close = rest
                        .find(')')
                        .filter(|&c| c > 2 && rest[c + 1..].starts_with('s'));
                    let Some(close) = close else {
                        return Err(syntax(format!(
                            "bad interpolation variable reference {}",
                            super::py::repr_str(rest)
                        )));
                    };
                    let var = rest[2..close].to_ascii_lowercase();
                    rest = &rest[close + 2..];
                    let Some(v) = self.lookup(sect, &var) else {
                        return Err(GetError::Interpolation {
                            class: "InterpolationMissingOptionError",
                            detail: format!(
                                "Bad value substitution: section: [{section}] option : {option} key : {var} rawval : {rest}"
                            ),
                        });
                    };
                    if v.contains('%') {
                        self.interpolate(sect, option, section, v, depth + 1, out)?;
                    } else {
                        out.push_str(v);
                    }
                }
                _ => {
                    return Err(syntax(format!(
                        "'%' must be followed by '%' or '(', found: {}",
                        super::py::repr_str(rest)
                    )))
                }
            }
        }
        Ok(())
    }
}

/// Options while reading: each value is its list of lines, joined at the end.
type RawOptions = IndexMap<String, Vec<String>>;

/// The section that option and continuation lines go to (`None` = `[DEFAULT]`).
fn current<'a>(
    cursect: &Option<String>,
    sections: &'a mut IndexMap<String, RawOptions>,
    defaults: &'a mut RawOptions,
) -> &'a mut RawOptions {
    match cursect {
        Some(name) => sections.get_mut(name).expect("current section exists"),
        None => defaults,
    }
}

/// `SECTCRE.match`: `[` then one or more bytes other than `]`, then `]`.
fn section_header(line: &str) -> Option<&str> {
    let body = line.strip_prefix('[')?;
    let end = body.find(']')?;
    (end > 0).then(|| &body[..end])
}

/// `OPTCRE.match` plus the value clean-up of `_read`: returns (lower-cased name, value).
fn option_line(line: &str) -> Option<(String, String)> {
    let first = line.chars().next()?;
    if first == ':' || first == '=' || is_space(first) {
        return None;
    }
    let sep = line.find([':', '='])?;
    let name = line[..sep].trim_end_matches(is_space).to_ascii_lowercase();
    // `\s*` after the separator, then `.*$`: everything up to the line's final '\n'.
    let after = line[sep + 1..].trim_start_matches(is_space);
    let mut value: String = after.strip_suffix('\n').unwrap_or(after).to_string();
    if let Some(pos) = value.find(';') {
        let before = if pos == 0 {
            value.chars().last()
        } else {
            value[..pos].chars().last()
        };
        if before.is_some_and(is_space) {
            value.truncate(pos);
        }
    }
    let mut value = strip(&value).to_string();
    if value == "\"\"" {
        value.clear();
    }
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(text: &str, s: &str, o: &str) -> Result<String, GetError> {
        Ini::parse(text).unwrap().get(s, o)
    }

    #[test]
    fn basic_keys_case_and_separators() {
        let ini = Ini::parse("[Conv1]\nType = conv\nfilters: 32\n").unwrap();
        assert_eq!(ini.get("Conv1", "TYPE").unwrap(), "conv");
        assert_eq!(ini.get("Conv1", "filters").unwrap(), "32");
        assert_eq!(ini.get("conv1", "type"), Err(GetError::NoSection));
    }

    #[test]
    fn continuation_survives_blank_and_comment_lines() {
        let text = "[a]\nk = 1\n\n# c\n  2\n  # not a comment\n";
        assert_eq!(get(text, "a", "k").unwrap(), "1\n2\n# not a comment");
    }

    #[test]
    fn inline_semicolon_rules() {
        assert_eq!(get("[a]\nk = x ;c\n", "a", "k").unwrap(), "x");
        assert_eq!(get("[a]\nk = x;c ;d\n", "a", "k").unwrap(), "x;c ;d");
        // At position 0 Python looks at the value's last byte.
        assert_eq!(get("[a]\nk = ;c\n", "a", "k").unwrap(), ";c");
        assert_eq!(get("[a]\nk = ;c \n", "a", "k").unwrap(), "");
        assert_eq!(get("[a]\nk = ;c\r\n", "a", "k").unwrap(), "");
        assert_eq!(get("[a]\nk = \"\"\n", "a", "k").unwrap(), "");
    }

    #[test]
    fn interpolation_and_defaults() {
        let text = "[DEFAULT]\nbase = 0.1\n[a]\nk = %(BASE)s%%\nn = %(__name__)s\n";
        assert_eq!(get(text, "a", "k").unwrap(), "0.1%");
        assert_eq!(get(text, "a", "n").unwrap(), "a");
        assert!(matches!(
            get("[a]\nk = %x\n", "a", "k"),
            Err(GetError::Interpolation {
                class: "InterpolationSyntaxError",
                ..
            })
        ));
        assert!(matches!(
            get("[a]\nk = %(q)s\n", "a", "k"),
            Err(GetError::Interpolation {
                class: "InterpolationMissingOptionError",
                ..
            })
        ));
        assert!(matches!(
            get("[a]\nk = %(k)s\n", "a", "k"),
            Err(GetError::Interpolation {
                class: "InterpolationDepthError",
                ..
            })
        ));
    }

    #[test]
    fn duplicates_merge_and_replace() {
        let ini = Ini::parse("[a]\nx=1\ny=2\n[b]\n[a]\nx=3\n").unwrap();
        assert_eq!(ini.sections().collect::<Vec<_>>(), ["a", "b"]);
        let keys: Vec<_> = ini
            .raw_options("a")
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(keys, [("__name__", "a"), ("x", "3"), ("y", "2")]);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            Ini::parse("k=1\n"),
            Err(ReadError::MissingSectionHeader { line_no: 1, .. })
        ));
        assert!(
            matches!(Ini::parse("[a]\n  k=1\nbad\n"), Err(ReadError::Parsing { lines }) if lines.len() == 2)
        );
        assert!(
            Ini::parse("[a]\nrem = 5\n")
                .unwrap()
                .raw_options("a")
                .unwrap()
                .len()
                == 1
        );
    }
}
