//! Port of options.py (`OptionsParser`, `Option`, the typed option parsers,
//! `OptionExpression`, `merge_from`, `print_values`) and of the option tables that
//! gpumodel.py's and convnet.py's `get_options_parser` build, for both generations.
//!
//! The command line itself is read by clap (src/bin/convnet.rs); this module keeps what
//! the original kept about each option, so checkpoints carry the `op` object the
//! original pickled and resuming follows its rules.

use crate::checkpoint::model::pystr;
use crate::checkpoint::value::{Obj, PyObj};
use crate::config::dictorder::iteration_order;
use crate::config::py;
use crate::config::value::Value;
use crate::config::Generation;
use indexmap::IndexMap;
use std::cell::RefCell;
use std::rc::Rc;

/// The option parser classes of options.py.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Int,
    Bool,
    Str,
    Float,
    Range,
    /// `ListOptionParser(<kind>)`, comma-separated.
    List(Box<Kind>),
}

/// `Option.default`: none (required unless excused), a value, or an `OptionExpression`.
#[derive(Debug, Clone, PartialEq)]
pub enum Default {
    None,
    Value(Value),
    Expr(String),
}

/// One `options.Option`.
#[derive(Debug, Clone, PartialEq)]
pub struct Opt {
    pub letter: String,
    pub name: String,
    pub desc: String,
    pub kind: Kind,
    pub set_once: bool,
    pub default: Default,
    /// `None` is `OptionsParser.EXCLUDE_ALL` ("all").
    pub excuses: Option<Vec<String>>,
    pub requires: Vec<String>,
    pub save: bool,
    pub value: Value,
    pub value_given: bool,
}

impl Opt {
    /// `-x` for one-letter options, `--xx` for the others.
    pub fn prefixed_letter(&self) -> String {
        format!("{}{}", "-".repeat(self.letter.len().min(2)), self.letter)
    }
}

/// An `options.OptionsParser`: options by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub options: IndexMap<String, Opt>,
}

/// `OptionException`, with the original's message.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionError(pub String);

impl std::fmt::Display for OptionError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl OptionError {
    /// An `OptionMissingException` (a missing option, or one a given option requires),
    /// after which the original printed the usage table.
    pub fn is_missing(&self) -> bool {
        self.0.ends_with(" not supplied") || self.0.contains(") requires option ")
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.to_string())
}

/// `add_option(letter, name, parser, desc, default=...)` with the other arguments at
/// their defaults.
fn def(letter: &str, name: &str, kind: Kind, desc: &str, default: Default) -> Opt {
    Opt {
        letter: letter.into(),
        name: name.into(),
        desc: desc.into(),
        kind,
        set_once: false,
        default,
        excuses: Some(vec![]),
        requires: vec![],
        save: true,
        value: Value::None,
        value_given: false,
    }
}

fn val(v: impl Into<Value>) -> Default {
    Default::Value(v.into())
}

impl Options {
    /// `ConvNet.get_options_parser()` of the generation (on top of gpumodel.py's
    /// `IGPUModel.get_options_parser()`; the 2012 code ships no gpumodel.py, so the 2011
    /// one is its base, as its convnet.py expects).
    pub fn convnet(gen: Generation) -> Options {
        use Kind::*;
        let list = |k: Kind| List(Box::new(k));
        let mut v = vec![
            Opt {
                excuses: None,
                ..def("f", "load_file", Str, "Load file", val(""))
            },
            def(
                "train-range",
                "train_batch_range",
                Range,
                "Data batch range: training",
                Default::None,
            ),
            def(
                "test-range",
                "test_batch_range",
                Range,
                "Data batch range: testing",
                Default::None,
            ),
            def(
                "data-provider",
                "dp_type",
                Str,
                "Data provider",
                val("default"),
            ),
            def(
                "test-freq",
                "testing_freq",
                Int,
                "Testing frequency",
                val(25i64),
            ),
            def("epochs", "num_epochs", Int, "Number of epochs", val(500i64)),
            def("data-path", "data_path", Str, "Data path", Default::None),
            def("save-path", "save_path", Str, "Save path", Default::None),
            def(
                "max-filesize",
                "max_filesize_mb",
                Int,
                "Maximum save file size (MB)",
                val(5000i64),
            ),
            def(
                "max-test-err",
                "max_test_err",
                Float,
                "Maximum test error for saving",
                Default::None,
            ),
            def("num-gpus", "num_gpus", Int, "Number of GPUs", val(1i64)),
            def("test-only", "test_only", Bool, "Test and quit?", val(0i64)),
            def(
                "zip-save",
                "zip_save",
                Bool,
                "Compress checkpoints?",
                val(0i64),
            ),
            def(
                "test-one",
                "test_one",
                Bool,
                "Test on one batch at a time?",
                val(1i64),
            ),
            def(
                "gpu",
                "gpu",
                list(Int),
                "GPU override",
                Default::Expr("[-1] * num_gpus".into()),
            ),
            def("mini", "minibatch_size", Int, "Minibatch size", val(128i64)),
            Opt {
                set_once: true,
                ..def(
                    "layer-def",
                    "layer_def",
                    Str,
                    "Layer definition file",
                    Default::None,
                )
            },
            def(
                "layer-params",
                "layer_params",
                Str,
                "Layer parameter file",
                Default::None,
            ),
            Opt {
                excuses: Some(
                    [
                        "data_path",
                        "save_path",
                        "train_batch_range",
                        "test_batch_range",
                    ]
                    .map(String::from)
                    .to_vec(),
                ),
                ..def(
                    "check-grads",
                    "check_grads",
                    Bool,
                    "Check gradients and quit?",
                    val(0i64),
                )
            },
            def(
                "multiview-test",
                "multiview_test",
                Bool,
                "Cropped DP: test on multiple patches?",
                val(0i64),
            ),
            Opt {
                set_once: true,
                ..def(
                    "crop-border",
                    "crop_border",
                    Int,
                    "Cropped DP: crop border size",
                    val(4i64),
                )
            },
        ];
        let empty = || Value::List(vec![]);
        if gen == Generation::C1 {
            let mv = v.iter_mut().find(|o| o.name == "multiview_test").unwrap();
            mv.requires = vec!["logreg_name".into()];
            v.push(def(
                "logreg-name",
                "logreg_name",
                Str,
                "Cropped DP: logreg layer name (for --multiview-test)",
                val(""),
            ));
        }
        // Both generations add these (the 2011 code after its logreg-name).
        v.push(def(
            "conv-to-local",
            "conv_to_local",
            list(Str),
            "Convert given conv layers to unshared local",
            Default::Value(empty()),
        ));
        v.push(def(
            "unshare-weights",
            "unshare_weights",
            list(Str),
            "Unshare weight matrices in given layers",
            Default::Value(empty()),
        ));
        v.push(def(
            "conserve-mem",
            "conserve_mem",
            Bool,
            "Conserve GPU memory (slower)?",
            val(0i64),
        ));
        // The 2012 code adds its own after them.
        if gen == Generation::A12 {
            v.push(def(
                "color-noise",
                "color_noise",
                Float,
                "Add PCA noise to color channels with given scale",
                val(0.0),
            ));
            v.push(Opt {
                requires: vec!["logreg_name".into(), "multiview_test".into()],
                ..def(
                    "test-out",
                    "test_out",
                    Str,
                    "Output test case predictions to given path",
                    val(""),
                )
            });
            v.push(def(
                "logreg-name",
                "logreg_name",
                Str,
                "Logreg cost layer name (for --test-out)",
                val(""),
            ));
            v.push(def(
                "pca-noise",
                "pca_noise",
                Float,
                "Add PCA noise to pixels with given scale",
                val(0.0),
            ));
            // Declared with the float parser and the boolean default False (sic).
            v.push(def(
                "scalar-mean",
                "scalar_mean",
                Float,
                "Subtract scalar pixel mean (as opposed to vector)?",
                val(false),
            ));
            v.push(def(
                "wupdate-freq",
                "wupdate_freq",
                Int,
                "Weight update (inverse) frequency, in minibatches (1 = every minibatch)",
                val(1i64),
            ));
        }
        // `OptionsParser.options` is a plain dict: kept here in the order CPython 2.7
        // iterates it (the order the original pickled it in and parsed in).
        let order = iteration_order(&v.iter().map(|o| o.name.as_str()).collect::<Vec<_>>());
        let mut slots: Vec<Option<Opt>> = v.into_iter().map(Some).collect();
        let mut options: IndexMap<String, Opt> = order
            .into_iter()
            .filter_map(|i| slots[i].take())
            .map(|o| (o.name.clone(), o))
            .collect();
        // ConvNet's changes to the base parser (deleting a key leaves the others' order).
        options.shift_remove("max_test_err");
        options["max_filesize_mb"].default = val(0i64);
        options["testing_freq"].default = val(50i64);
        options["num_epochs"].default = val(50000i64);
        options["dp_type"].default = Default::None;
        Options { options }
    }

    /// `Option.set_value(value)`: parse a command-line string with the option's parser.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), OptionError> {
        let o = self
            .options
            .get_mut(name)
            .ok_or_else(|| OptionError(format!("no option '{name}'")))?;
        match parse(&o.kind, text) {
            Ok(v) => {
                o.value = v;
                o.value_given = true;
                Ok(())
            }
            Err(e) => Err(OptionError(format!(
                "Unable to parse option {} ({}): {e}",
                o.prefixed_letter(),
                o.desc
            ))),
        }
    }

    /// `OptionsParser.set_value(name, value, parse=False)`.
    pub fn set_value(&mut self, name: &str, v: Value) {
        if let Some(o) = self.options.get_mut(name) {
            o.value = v;
            o.value_given = true;
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.options.get(name).map(|o| &o.value)
    }

    /// The order `OptionsParser.parse` walks the options in:
    /// `get_options_list(SORT_EXPR_LAST)`, Python 2's `sorted` over the dict's values
    /// with a comparator that only says "expression defaults go last" and never "equal".
    /// For fewer than 64 items that sort is one binary insertion sort, which with this
    /// comparator reverses the dict order of the other options and then appends the
    /// expression-default ones in dict order. It decides which missing option is
    /// reported first.
    pub fn parse_order(&self) -> Vec<String> {
        let is_expr = |o: &&Opt| matches!(o.default, Default::Expr(_));
        let plain = self.options.values().rev().filter(|o| !is_expr(o));
        let exprs = self.options.values().filter(is_expr);
        plain.chain(exprs).map(|o| o.name.clone()).collect()
    }

    /// `OptionsParser.parse()` on the command line's options: `given` holds (name, text)
    /// pairs in command-line order (a repeated option's last text counts, as
    /// `dict(getopt(...))` kept it). Walking [`Options::parse_order`]: a given option is
    /// parsed (`Unable to parse option ...`); a missing one that no given option excuses
    /// and that has no default is an error (`Option X (desc) not supplied`), else it takes
    /// its default; a given option's `requires` must be given too (checked in letter
    /// order). `also_excused` names options our own modes excuse (`--dump-layers`,
    /// `--bench`).
    pub fn parse_args(
        &mut self,
        given: &[(String, String)],
        also_excused: &[&str],
    ) -> Result<(), OptionError> {
        let texts: std::collections::HashMap<&str, &str> = given
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        self.walk(Some(&texts), also_excused)
    }

    /// The rest of `OptionsParser.parse` once the given options are set (by
    /// [`Options::set`]): the missing-option and `requires` checks of
    /// [`Options::parse_args`], defaults for the others.
    pub fn finish_parse(&mut self) -> Result<(), OptionError> {
        self.walk(None, &[])
    }

    fn walk(
        &mut self,
        texts: Option<&std::collections::HashMap<&str, &str>>,
        also_excused: &[&str],
    ) -> Result<(), OptionError> {
        let given: std::collections::HashSet<String> = match texts {
            Some(t) => t.keys().map(|k| k.to_string()).collect(),
            None => self
                .options
                .values()
                .filter(|o| o.value_given)
                .map(|o| o.name.clone())
                .collect(),
        };
        let mut by_letter: Vec<&Opt> = self.options.values().collect();
        by_letter.sort_by(|a, b| a.letter.cmp(&b.letter));
        let by_letter: Vec<(String, String, String)> = by_letter
            .iter()
            .map(|o| (o.name.clone(), o.prefixed_letter(), o.desc.clone()))
            .collect();
        let excusers: Vec<Option<Vec<String>>> = self
            .options
            .values()
            .filter(|o| given.contains(&o.name))
            .map(|o| o.excuses.clone())
            .collect();
        for name in self.parse_order() {
            let o = self.options.get_mut(&name).unwrap();
            if given.contains(&name) {
                if let Some(text) = texts.and_then(|t| t.get(name.as_str())) {
                    self.set(&name, text)?;
                }
                let o = &self.options[&name];
                if let Some((_, letter, desc)) = by_letter
                    .iter()
                    .find(|(n, _, _)| o.requires.contains(n) && !given.contains(n))
                {
                    return Err(OptionError(format!(
                        "Option {} ({}) requires option {letter} ({desc})",
                        o.prefixed_letter(),
                        o.desc
                    )));
                }
            } else {
                let excused = also_excused.contains(&name.as_str())
                    || excusers
                        .iter()
                        .any(|ex| ex.as_ref().is_none_or(|ex| ex.contains(&name)));
                match &o.default {
                    Default::None if !excused => {
                        return Err(OptionError(format!(
                            "Option {} ({}) not supplied",
                            o.prefixed_letter(),
                            o.desc
                        )))
                    }
                    Default::Value(v) => o.value = v.clone(),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// `print_usage()`: the table of options, those with defaults first, each group in
    /// letter order. With `bold` the option names and the header carry the terminal's
    /// bold escapes, as the original always printed them; the visible layout is the
    /// same either way (the original measured its columns with the escapes in them).
    pub fn usage(&self, program: &str, bold: bool) -> Vec<String> {
        let b = |s: &str| {
            if bold {
                format!("\x1b[1m{s}\x1b[0m")
            } else {
                s.to_string()
            }
        };
        let mut opts: Vec<&Opt> = self.options.values().collect();
        opts.sort_by(|a, b| a.letter.cmp(&b.letter));
        // (option name, " <type>", description, "[default]").
        let mut rows: Vec<(String, String, String, Option<String>)> = vec![];
        let mut num_def = 0;
        for o in opts {
            let default = match &o.default {
                Default::None => None,
                Default::Expr(e) => Some(format!("[{e}]")),
                Default::Value(v) => Some(format!("[{}]", show_value(&o.kind, v))),
            };
            let row = (
                o.prefixed_letter(),
                format!(" <{}>", type_str(&o.kind)),
                o.desc.clone(),
                default,
            );
            if row.3.is_some() {
                rows.insert(num_def, row);
                num_def += 1;
            } else {
                rows.push(row);
            }
        }
        let w0 = rows
            .iter()
            .map(|r| r.0.len() + r.1.len())
            .max()
            .unwrap_or(0);
        let w1 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
        let w2 = rows
            .iter()
            .map(|r| r.3.as_ref().map_or(0, String::len))
            .max()
            .unwrap_or(0);
        // The header's first cell is as wide as the bold option cells measured: 8 more.
        let mut out = vec![
            format!("{program} usage:"),
            format!(
                "{} {} {} ",
                b(&format!("{:<w$}", "    Option", w = w0 + 8)),
                b(&format!("{:<w1$}", "Description")),
                b(&format!("{:<w2$}", "Default"))
            ),
        ];
        for (letter, ty, desc, default) in rows {
            let cell = format!(
                "{}{ty}{}",
                b(&letter),
                " ".repeat(w0 - letter.len() - ty.len())
            );
            let (open, close) = match default {
                Some(_) => ("    [", "] -"),
                None => ("     ", "  -"),
            };
            let default = default.unwrap_or_else(|| " ".into());
            out.push(format!("{open}{cell}{close} {desc:<w1$} {default:<w2$} "));
        }
        out
    }

    /// `eval_expr_defaults`: the one expression the originals use, `[-1] * num_gpus`.
    pub fn eval_expr_defaults(&mut self) -> Result<(), OptionError> {
        let num_gpus = self.get("num_gpus").and_then(Value::as_int).unwrap_or(1);
        for o in self.options.values_mut() {
            if let (Default::Expr(e), false) = (&o.default, o.value_given) {
                if e != "[-1] * num_gpus" {
                    return Err(OptionError(format!("expression '{e}': not supported")));
                }
                o.value = Value::List(vec![Value::Int(-1); num_gpus.max(0) as usize]);
            }
        }
        Ok(())
    }

    /// `old_op.merge_from(new_op)` on resume: options the new command line gave replace
    /// the checkpoint's, except `set_once` ones (an error); options the checkpoint lacks
    /// are added.
    pub fn merge_from(&mut self, new: &Options) -> Result<(), OptionError> {
        for (name, o) in self.options.iter_mut() {
            if let Some(n) = new.options.get(name).filter(|n| n.value_given || !n.save) {
                if n.set_once {
                    return Err(OptionError(format!(
                        "Option {} ({}) cannot be changed",
                        n.prefixed_letter(),
                        n.desc
                    )));
                }
                *o = n.clone();
            }
        }
        for (name, n) in &new.options {
            if !self.options.contains_key(name) {
                self.options.insert(name.clone(), n.clone());
            }
        }
        Ok(())
    }

    /// Reorders the options as a CPython 2.7 dict iterates after inserting them in
    /// their present order: what unpickling a checkpoint's `op` (keys in stream order)
    /// and `merge_from` (new keys inserted last) leave in the original.
    pub fn as_python_dict(&mut self) {
        let keys: Vec<String> = self.options.keys().cloned().collect();
        let mut old = std::mem::take(&mut self.options);
        self.options = iteration_order(&keys)
            .into_iter()
            .map(|i| (keys[i].clone(), old.shift_remove(&keys[i]).unwrap()))
            .collect();
    }

    /// `print_values`: `desc: value [DEFAULT]`, sorted by description.
    pub fn print_values(&self) -> Vec<String> {
        let mut opts: Vec<&Opt> = self.options.values().collect();
        opts.sort_by(|a, b| a.desc.cmp(&b.desc));
        let longest_desc = opts.iter().map(|o| o.desc.len()).max().unwrap_or(0);
        let defaulted = |o: &Opt| !o.value_given && o.default != Default::None;
        let longest_val = opts
            .iter()
            .filter(|o| defaulted(o))
            .map(|o| str_value(o).len())
            .max()
            .unwrap_or(0);
        opts.iter()
            .map(|o| {
                let tag = if defaulted(o) { "[DEFAULT]" } else { "" };
                format!(
                    "{:<longest_desc$}: {:<longest_val$} {tag}",
                    o.desc,
                    str_value(o)
                )
            })
            .collect()
    }

    /// The pickled `options.OptionsParser` instance.
    pub fn to_pyobj(&self) -> Obj {
        let opts = self
            .options
            .values()
            .map(|o| (pystr(&o.name), option_obj(o)))
            .collect();
        instance(
            "options.OptionsParser",
            vec![(pystr("options"), Rc::new(PyObj::Dict(RefCell::new(opts))))],
        )
    }
}

impl Options {
    /// Read the `op` of a checkpoint (an `options.OptionsParser` instance) back.
    pub fn from_pyobj(op: &PyObj) -> Result<Options, String> {
        let PyObj::Instance { state, .. } = op else {
            return Err("'op' is not an OptionsParser instance".into());
        };
        let state = state.borrow().clone().ok_or("'op' has no state")?;
        let opts = state.get("options").ok_or("'op' has no options")?;
        let PyObj::Dict(items) = &*opts else {
            return Err("'op.options' is not a dict".into());
        };
        let mut options = IndexMap::new();
        for (k, o) in items.borrow().iter() {
            let name = k.as_text().ok_or("option name is not a string")?;
            let opt = option_from(o).map_err(|e| format!("option '{name}': {e}"))?;
            options.insert(name, opt);
        }
        Ok(Options { options })
    }
}

fn option_from(o: &PyObj) -> Result<Opt, String> {
    let PyObj::Instance { state, .. } = o else {
        return Err("not an Option instance".into());
    };
    let st = state.borrow().clone().ok_or("no state")?;
    let field = |k: &str| st.get(k).ok_or(format!("no '{k}'"));
    let text = |k: &str| field(k)?.as_text().ok_or(format!("'{k}' is not a string"));
    let strs = |k: &str| -> Result<Vec<String>, String> {
        match &*field(k)? {
            PyObj::List(l) => l
                .borrow()
                .iter()
                .map(|x| x.as_text().ok_or(format!("'{k}' holds a non-string")))
                .collect(),
            _ => Err(format!("'{k}' is not a list")),
        }
    };
    let default_obj = field("default")?;
    let default = match &*default_obj {
        PyObj::None => Default::None,
        PyObj::Instance { class, state } if class == "options.OptionExpression" => {
            let st = state.borrow().clone().ok_or("expression without state")?;
            Default::Expr(
                st.get("expr")
                    .and_then(|e| e.as_text())
                    .ok_or("expression without 'expr'")?,
            )
        }
        _ => Default::Value(value_from(&default_obj)?),
    };
    let excuses = match &*field("excuses")? {
        PyObj::Bytes(_) | PyObj::Unicode(_) => None,
        _ => Some(strs("excuses")?),
    };
    Ok(Opt {
        letter: text("letter")?,
        name: text("name")?,
        desc: text("desc")?,
        kind: kind_from(&*field("parser")?)?,
        set_once: field("set_once")?.truthy(),
        default,
        excuses,
        requires: strs("requires")?,
        save: field("save")?.truthy(),
        value: value_from(&field("value")?)?,
        value_given: field("value_given")?.truthy(),
    })
}

fn kind_from(p: &PyObj) -> Result<Kind, String> {
    match p {
        PyObj::Global { name, .. } => Ok(match name.as_str() {
            "IntegerOptionParser" => Kind::Int,
            "BooleanOptionParser" => Kind::Bool,
            "StringOptionParser" => Kind::Str,
            "FloatOptionParser" => Kind::Float,
            "RangeOptionParser" => Kind::Range,
            other => return Err(format!("unknown option parser {other}")),
        }),
        PyObj::Instance { class, state } if class == "options.ListOptionParser" => {
            let st = state
                .borrow()
                .clone()
                .ok_or("ListOptionParser without state")?;
            Ok(Kind::List(Box::new(kind_from(
                &*st.get("parsers")
                    .ok_or("ListOptionParser without parsers")?,
            )?)))
        }
        _ => Err("unknown option parser".into()),
    }
}

/// An option value from its Python object (options hold no layer dicts).
fn value_from(v: &Obj) -> Result<Value, String> {
    crate::checkpoint::model::pyobj_to_value(v, &std::collections::HashMap::new())
}

/// The option parsers' `parse`, with their messages.
pub fn parse(kind: &Kind, text: &str) -> Result<Value, String> {
    match kind {
        Kind::Int => py::int(text)
            .map(Value::Int)
            .ok_or_else(|| "argument is not an integer".into()),
        Kind::Bool => py::int(text)
            .filter(|v| *v == 0 || *v == 1)
            .map(Value::Int)
            .ok_or_else(|| "argument is not a boolean".into()),
        Kind::Str => Ok(s(text)),
        Kind::Float => py::float(text)
            .map(Value::Float)
            .ok_or_else(|| "argument is not a float".into()),
        Kind::Range => {
            let range = text.split_once('-').filter(|(a, b)| {
                [a, b]
                    .iter()
                    .all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
            });
            match range {
                Some((a, b)) => {
                    let (a, b): (i64, i64) = (
                        a.parse()
                            .map_err(|_| "argument is neither an integer nor a range")?,
                        b.parse()
                            .map_err(|_| "argument is neither an integer nor a range")?,
                    );
                    Ok(Value::List((a..=b).map(Value::Int).collect()))
                }
                None => py::int(text)
                    .map(|v| Value::List(vec![Value::Int(v)]))
                    .ok_or_else(|| "argument is neither an integer nor a range".into()),
            }
        }
        Kind::List(k) => text
            .split(',')
            .map(|v| parse(k, v))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::List)
            .map_err(|_| format!("argument is not of the form {}", type_str(kind))),
    }
}

fn type_str(kind: &Kind) -> String {
    match kind {
        Kind::Int => "int".into(),
        Kind::Bool => "0/1".into(),
        Kind::Str => "string".into(),
        Kind::Float => "float".into(),
        Kind::Range => "int[-int]".into(),
        Kind::List(k) => format!("{},...", type_str(k)),
    }
}

/// `Option.get_str_value()`: the parser's `to_string` of the value.
fn str_value(o: &Opt) -> String {
    show_value(&o.kind, &o.value)
}

/// The parser's `to_string` of a value.
fn show_value(kind: &Kind, v: &Value) -> String {
    fn show(kind: &Kind, v: &Value) -> String {
        match (kind, v) {
            (_, Value::None) => String::new(),
            // '%.6g' of whatever number is there (2012's scalar_mean holds False).
            (Kind::Float, v) if v.as_f64().is_some() => format_g6(v.as_f64().unwrap()),
            (Kind::Range, Value::List(l)) => match (l.first(), l.last()) {
                (Some(a), Some(b)) => {
                    format!("{}-{}", a.as_int().unwrap_or(0), b.as_int().unwrap_or(0))
                }
                _ => String::new(),
            },
            (Kind::List(k), Value::List(l)) => {
                l.iter().map(|x| show(k, x)).collect::<Vec<_>>().join(",")
            }
            (_, Value::Int(i)) => i.to_string(),
            (_, Value::Bool(b)) => if *b { "True" } else { "False" }.into(),
            (_, Value::Float(f)) => format!("{f:?}"),
            (_, Value::Str(s)) => s.clone(),
            (_, other) => format!("{other:?}"),
        }
    }
    show(kind, v)
}

/// C's `%.6g`.
fn format_g6(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f.is_infinite() {
            if f > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        } else {
            "0".into()
        };
    }
    let exp = f.abs().log10().floor() as i32;
    let trim = |t: String| {
        if t.contains('.') {
            t.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            t
        }
    };
    if !(-4..6).contains(&exp) {
        let m = f / 10f64.powi(exp);
        let (m, exp) = if trim(format!("{:.5}", m.abs())) == "10" {
            (m / 10.0, exp + 1)
        } else {
            (m, exp)
        };
        format!(
            "{}e{}{:02}",
            trim(format!("{m:.5}")),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        trim(format!("{:.*}", (5 - exp).max(0) as usize, f))
    }
}

fn instance(class: &str, state: Vec<(Obj, Obj)>) -> Obj {
    Rc::new(PyObj::Instance {
        class: class.into(),
        state: RefCell::new(Some(Rc::new(PyObj::Dict(RefCell::new(state))))),
    })
}

/// An option value as its Python object (options hold no layer references).
fn value_obj(v: &Value) -> Obj {
    crate::checkpoint::model::value_to_pyobj(v, &std::collections::HashMap::new())
}

fn parser_obj(kind: &Kind) -> Obj {
    let class = |n: &str| {
        Rc::new(PyObj::Global {
            module: "options".into(),
            name: n.into(),
        })
    };
    match kind {
        Kind::Int => class("IntegerOptionParser"),
        Kind::Bool => class("BooleanOptionParser"),
        Kind::Str => class("StringOptionParser"),
        Kind::Float => class("FloatOptionParser"),
        Kind::Range => class("RangeOptionParser"),
        Kind::List(k) => instance(
            "options.ListOptionParser",
            vec![
                (pystr("parsers"), parser_obj(k)),
                (pystr("sepchar"), pystr(",")),
            ],
        ),
    }
}

fn option_obj(o: &Opt) -> Obj {
    let strs = |v: &[String]| {
        Rc::new(PyObj::List(RefCell::new(
            v.iter().map(|x| pystr(x)).collect(),
        )))
    };
    let default = match &o.default {
        Default::None => Rc::new(PyObj::None),
        Default::Value(v) => value_obj(v),
        Default::Expr(e) => instance("options.OptionExpression", vec![(pystr("expr"), pystr(e))]),
    };
    let excuses = match &o.excuses {
        None => pystr("all"),
        Some(v) => strs(v),
    };
    instance(
        "options.Option",
        vec![
            (pystr("letter"), pystr(&o.letter)),
            (pystr("name"), pystr(&o.name)),
            (pystr("desc"), pystr(&o.desc)),
            (pystr("parser"), parser_obj(&o.kind)),
            (pystr("set_once"), Rc::new(PyObj::Bool(o.set_once))),
            (pystr("default"), default),
            (pystr("excuses"), excuses),
            (pystr("requires"), strs(&o.requires)),
            (pystr("save"), Rc::new(PyObj::Bool(o.save))),
            (pystr("value"), value_obj(&o.value)),
            (pystr("value_given"), Rc::new(PyObj::Bool(o.value_given))),
            (pystr("prefixed_letter"), pystr(&o.prefixed_letter())),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_g6() {
        for (f, want) in [
            (0.5, "0.5"),
            (1e-5, "1e-05"),
            (123456789.0, "1.23457e+08"),
            (0.0001, "0.0001"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
        ] {
            assert_eq!(format_g6(f), want);
        }
    }

    #[test]
    fn parsers_follow_options_py() {
        assert_eq!(
            parse(&Kind::Range, "1-3"),
            Ok(Value::List(vec![
                Value::Int(1),
                Value::Int(2),
                Value::Int(3)
            ]))
        );
        assert_eq!(
            parse(&Kind::Range, "7"),
            Ok(Value::List(vec![Value::Int(7)]))
        );
        assert!(parse(&Kind::Bool, "2").is_err());
        assert!(parse(&Kind::List(Box::new(Kind::Int)), "0,x").is_err());
    }
}
