//! Port of the command-line half of options.py's `OptionsParser.parse` (both
//! generations): Python's `getopt.getopt` over `-f` and the `--name=value` long options
//! (each takes a value, as `--name=value` or `--name value`; unique prefixes of a long
//! name work, as in getopt), plus the options only our `convnet` has.

use crate::options::Options;

/// What getopt rejected, with its message (`option --x not recognized`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct GetoptError(pub String);

impl std::fmt::Display for GetoptError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A long option getopt knows: its name and whether it takes a value.
#[derive(Clone, Debug)]
pub struct LongOpt {
    pub name: String,
    pub has_arg: bool,
}

/// What getopt returns: the `(option, value)` pairs and the arguments left.
pub type Getopt = (Vec<(String, String)>, Vec<String>);

/// `getopt.getopt(args, shortopts, longopts)`: `(option, value)` pairs (`-f`, `--mini`)
/// in command-line order and the arguments after the options. Parsing stops at `--`
/// or at the first argument that is not an option.
pub fn getopt(
    args: &[String],
    short_with_arg: &[char],
    long: &[LongOpt],
) -> Result<Getopt, GetoptError> {
    let mut opts = vec![];
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i] != "-" {
        let a = &args[i];
        i += 1;
        if a == "--" {
            break;
        }
        if let Some(body) = a.strip_prefix("--") {
            let (name, mut value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let (has_arg, full) = long_has_args(name, long)?;
            if has_arg {
                if value.is_none() {
                    let Some(next) = args.get(i) else {
                        return Err(GetoptError(format!("option --{full} requires argument")));
                    };
                    value = Some(next.clone());
                    i += 1;
                }
            } else if value.is_some() {
                return Err(GetoptError(format!(
                    "option --{full} must not have an argument"
                )));
            }
            opts.push((format!("--{full}"), value.unwrap_or_default()));
        } else {
            let mut rest: Vec<char> = a[1..].chars().collect();
            while !rest.is_empty() {
                let c = rest.remove(0);
                if !short_with_arg.contains(&c) {
                    return Err(GetoptError(format!("option -{c} not recognized")));
                }
                let value = if rest.is_empty() {
                    let Some(next) = args.get(i) else {
                        return Err(GetoptError(format!("option -{c} requires argument")));
                    };
                    i += 1;
                    next.clone()
                } else {
                    std::mem::take(&mut rest).into_iter().collect()
                };
                opts.push((format!("-{c}"), value));
            }
        }
    }
    Ok((opts, args[i..].to_vec()))
}

/// getopt's `long_has_args`: an exact name, else a unique prefix.
fn long_has_args(name: &str, long: &[LongOpt]) -> Result<(bool, String), GetoptError> {
    let matches: Vec<&LongOpt> = long.iter().filter(|o| o.name.starts_with(name)).collect();
    if matches.is_empty() {
        return Err(GetoptError(format!("option --{name} not recognized")));
    }
    if let Some(exact) = matches.iter().find(|o| o.name == name) {
        return Ok((exact.has_arg, exact.name.clone()));
    }
    if matches.len() > 1 {
        return Err(GetoptError(format!("option --{name} not a unique prefix")));
    }
    Ok((matches[0].has_arg, matches[0].name.clone()))
}

/// Our options, beside the original's.
pub const EXTRA_OPTIONS: &[(&str, bool, &str)] = &[
    ("compat", true, "auto|2011|2012: which original to follow (auto: 2012 when a layer has gpu= or a type only the 2012 code has)"),
    ("dump-layers", false, "parse the layer files, print the layer dicts as JSON and exit (excuses the data, save and range options)"),
    ("data-dims", true, "D0,D1,...: data matrix sizes by dataIdx where no data provider is asked (--dump-layers, --bench; default 3072,1)"),
    ("num-classes", true, "classes where no data provider is asked (default 10)"),
    ("seed", true, "seed of the weight initialisation, the providers' crops and the net's random numbers (default 0)"),
    ("device", true, "cpu|cuda: where the convolution, pooling and normalisation kernels run; cuda: our cuda/ kernels on the first device of --gpu (default cpu)"),
    ("bench", true, "N: train N minibatches of synthetic data after one untimed warm-up, print images/s (excuses the data, save and range options)"),
];

/// The long options of a generation's table and ours.
pub fn long_options(tables: &[&Options]) -> Vec<LongOpt> {
    let mut out: Vec<LongOpt> = vec![];
    for t in tables {
        for o in t.options.values().filter(|o| o.letter.len() > 1) {
            if !out.iter().any(|l| l.name == o.letter) {
                out.push(LongOpt {
                    name: o.letter.clone(),
                    has_arg: true,
                });
            }
        }
    }
    out.extend(EXTRA_OPTIONS.iter().map(|(n, a, _)| LongOpt {
        name: n.to_string(),
        has_arg: *a,
    }));
    out
}

/// Which original to follow, `--compat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compat {
    Auto,
    Y2011,
    Y2012,
}

/// Our own options' values.
#[derive(Clone, Debug, PartialEq)]
pub struct Extras {
    pub compat: Compat,
    pub dump_layers: bool,
    pub data_dims: Vec<i64>,
    pub num_classes: i64,
    pub seed: u64,
    pub bench: Option<usize>,
    /// `--device=cuda`: the image kernels on a CUDA GPU.
    pub cuda: bool,
}

impl Default for Extras {
    fn default() -> Extras {
        Extras {
            compat: Compat::Auto,
            dump_layers: false,
            data_dims: vec![3072, 1],
            num_classes: 10,
            seed: 0,
            bench: None,
            cuda: false,
        }
    }
}

/// A command line split into the original's options (by option name, in
/// command-line order, with their texts) and ours.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandLine {
    pub given: Vec<(String, String)>,
    pub extras: Extras,
}

impl CommandLine {
    /// The text given for an option (by name), the last if repeated.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.given
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `args` (without the program name) against the option table `table` and ours.
pub fn parse_command_line(args: &[String], table: &Options) -> Result<CommandLine, String> {
    let (opts, rest) = getopt(args, &['f'], &long_options(&[table])).map_err(|e| e.0)?;
    if let Some(extra) = rest.first() {
        return Err(format!(
            "unexpected argument '{extra}' (options are -f PATH and --name=value)"
        ));
    }
    let mut given = vec![];
    let mut extras = Extras::default();
    for (flag, value) in opts {
        let long = flag.trim_start_matches('-');
        match long {
            "compat" => {
                extras.compat = match value.as_str() {
                    "auto" => Compat::Auto,
                    "2011" => Compat::Y2011,
                    "2012" => Compat::Y2012,
                    _ => {
                        return Err(format!(
                            "--compat: '{value}' is not one of auto, 2011, 2012"
                        ))
                    }
                }
            }
            "dump-layers" => extras.dump_layers = true,
            "data-dims" => {
                extras.data_dims = value
                    .split(',')
                    .map(|d| d.trim().parse::<i64>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--data-dims: '{value}' is not a list of integers"))?
            }
            "num-classes" => {
                extras.num_classes = value
                    .parse()
                    .map_err(|_| format!("--num-classes: '{value}' is not an integer"))?
            }
            "seed" => {
                extras.seed = value
                    .parse()
                    .map_err(|_| format!("--seed: '{value}' is not a non-negative integer"))?
            }
            "device" => {
                extras.cuda = match value.as_str() {
                    "cpu" => false,
                    "cuda" => true,
                    _ => return Err(format!("--device: '{value}' is not one of cpu, cuda")),
                }
            }
            "bench" => {
                extras.bench =
                    Some(value.parse().map_err(|_| {
                        format!("--bench: '{value}' is not a number of minibatches")
                    })?)
            }
            _ => {
                let o = table
                    .options
                    .values()
                    .find(|o| o.letter == long)
                    .expect("getopt only returns known options");
                given.push((o.name.clone(), value));
            }
        }
    }
    Ok(CommandLine { given, extras })
}

/// The lines after the original's usage table that list our options.
pub fn extra_usage() -> Vec<String> {
    let mut out = vec!["Also (this port's own):".to_string()];
    for (name, has_arg, desc) in EXTRA_OPTIONS {
        let flag = if *has_arg {
            format!("--{name}=<..>")
        } else {
            format!("--{name}")
        };
        out.push(format!("    {flag:<20} {desc}"));
    }
    out.push("    convnet bench kernels [...], convnet import fashion-mnist|cifar10 [...]: see --help of each".into());
    out
}
