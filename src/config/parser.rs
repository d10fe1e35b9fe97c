//! Port of `LayerParser.parse_layers` (both generations): the definition pass, the
//! detaching of `neuron=` layers (`detach_neuron_layers`, `detach_neuron_layer`,
//! `get_unused_layer_name`), the memory-sharing `optimize` pass, the unused-layer check
//! and the parameter pass.

use super::dictorder::iteration_order;
use super::ini::Ini;
use super::layer::{defaults, int_of, str_of, Cx};
use super::layers::{self, is_registered, A12_ONLY_TYPES};
use super::reader::{Section, Source};
use super::value::{write_json_dict, write_json_str, Dict, Value};
use super::{ConfigError, Generation, Model};
use indexmap::IndexMap;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;

/// The parsed layers: the 2011 list, or the 2012 dict (kept in insertion order here;
/// [`Net::order`] gives the order Python 2.7 iterates it in).
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    pub generation: Generation,
    pub layers: Vec<Dict>,
}

impl Net {
    /// Indices of `layers` in the original's iteration order.
    pub fn order(&self) -> Vec<usize> {
        order_of(self.generation, &self.layers)
    }

    /// `--dump-layers`: the 2011 list as a JSON array, the 2012 dict as an object.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let order = self.order();
        let (open, close) = if self.generation == Generation::C1 {
            ('[', ']')
        } else {
            ('{', '}')
        };
        out.push(open);
        for (n, &i) in order.iter().enumerate() {
            out.push_str(if n > 0 { ",\n " } else { "\n " });
            if self.generation == Generation::A12 {
                write_json_str(str_of(&self.layers[i], "name"), &mut out);
                out.push_str(": ");
            }
            write_json_dict(&self.layers[i], &mut out);
        }
        out.push('\n');
        out.push(close);
        out
    }
}

fn order_of(gen: Generation, layers: &[Dict]) -> Vec<usize> {
    match gen {
        Generation::C1 => (0..layers.len()).collect(),
        Generation::A12 => {
            iteration_order(&layers.iter().map(|l| str_of(l, "name")).collect::<Vec<_>>())
        }
    }
}

fn read_ini(path: &Path) -> Result<Ini, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(format!("cannot read the file: {e}")).in_file(path))?;
    Ini::parse(&super::py::from_bytes(&bytes))
        .map_err(|e| ConfigError::new(format!("{e}")).crash().in_file(path))
}

/// `--compat auto`: 2012 when a layer names a `gpu` or has a type only 2012 knows.
pub fn detect_generation(def: &Path) -> Generation {
    let Ok(ini) = read_ini(def) else {
        return Generation::C1;
    };
    let a12 = ini.sections().any(|s| {
        ini.has_option(s, "gpu")
            || ini
                .get(s, "type")
                .is_ok_and(|t| A12_ONLY_TYPES.contains(&t.as_str()))
    });
    if a12 {
        Generation::A12
    } else {
        Generation::C1
    }
}

/// `LayerParser.parse_layers(layer_cfg_path, param_cfg_path, model)`. The lines the
/// original prints while parsing are appended to `log`.
pub fn parse_layers(
    gen: Generation,
    def: &Path,
    params: &Path,
    model: &Model,
    log: &mut Vec<String>,
) -> Result<Net, ConfigError> {
    check_files(def, params)?;
    let mut rng = StdRng::seed_from_u64(model.seed);
    let defs = Source::Ini(&read_ini(def)?);
    let mut layers = define(gen, &defs, model, log, &mut rng).map_err(|e| e.in_file(def))?;
    layers = detach_neuron_layers(gen, layers, log).map_err(|e| e.in_file(def))?;
    optimize(gen, &mut layers).map_err(|e| e.in_file(def))?;
    check_unused(gen, &layers).map_err(|e| e.in_file(def))?;
    let mut net = Net {
        generation: gen,
        layers,
    };
    reparse_params(&mut net, def, params, model)?;
    Ok(net)
}

/// `parse_layers(..., layers)` with the layers of a checkpoint, as on resume: the
/// definition pass is skipped (its file must still exist) and the parameter file is
/// read again, so new hyper-parameters take effect.
pub fn reparse_params(
    net: &mut Net,
    def: &Path,
    params: &Path,
    model: &Model,
) -> Result<(), ConfigError> {
    check_files(def, params)?;
    let param_ini = read_ini(params)?;
    add_params(
        net.generation,
        &mut net.layers,
        &Source::Ini(&param_ini),
        params,
        model,
    )
    .map_err(|e| e.in_file(params))
}

fn check_files(def: &Path, params: &Path) -> Result<(), ConfigError> {
    if !def.exists() {
        return Err(ConfigError::new(format!(
            "Layer definition file '{}' does not exist",
            def.display()
        )));
    }
    if !params.exists() {
        return Err(ConfigError::new(format!(
            "Layer parameter file '{}' does not exist",
            params.display()
        )));
    }
    Ok(())
}

/// The definition pass: one parser per section, in file order.
fn define(
    gen: Generation,
    defs: &Source,
    model: &Model,
    log: &mut Vec<String>,
    rng: &mut StdRng,
) -> Result<Vec<Dict>, ConfigError> {
    let Source::Ini(ini) = defs else {
        unreachable!("definitions come from a file")
    };
    let mut layers: Vec<Dict> = Vec::new();
    for name in ini.sections() {
        if !ini.has_option(name, "type") {
            return Err(
                ConfigError::layer(name, format!("Layer '{name}': no type given")).key("type"),
            );
        }
        let sec = Section { src: defs, name };
        let ltype = sec.str("type")?.unwrap_or_default();
        if !is_registered(gen, &ltype) {
            return Err(ConfigError::layer(
                name,
                format!("Layer '{name}': Unknown layer type: '{ltype}'"),
            )
            .key("type"));
        }
        let mut cx = Cx {
            gen,
            sec,
            name: name.to_string(),
            prev: &layers,
            data: Some(model),
            dic: defaults(gen),
            log,
        };
        layers::parse(&ltype, &mut cx, rng)?;
        let dic = cx.dic;
        layers.push(dic);
    }
    Ok(layers)
}

/// `get_unused_layer_name`: `wish`, else `wish.1` … `wish.99`.
fn unused_name(gen: Generation, taken: &[&str], wish: &str) -> Result<String, ConfigError> {
    if !taken.contains(&wish) {
        return Ok(wish.to_string());
    }
    (1..100)
        .map(|i| format!("{wish}.{i}"))
        .find(|n| !taken.contains(&n.as_str()))
        .ok_or_else(|| {
            let msg = if gen == Generation::C1 {
                "This is insane."
            } else {
                "This is @#$%&!."
            };
            ConfigError::layer(wish, msg)
        })
}

fn wants_neuron(l: &Dict) -> bool {
    str_of(l, "type") != "neuron" && l.get("neuron").is_some_and(Value::truthy)
}

/// Parse the neuron layer `name` over `src` as the original does through
/// `FakeConfigParser` (no model, so no `gpu` range check).
fn neuron_layer(
    gen: Generation,
    name: &str,
    src: &Dict,
    prev: &[Dict],
    log: &mut Vec<String>,
) -> Result<Dict, ConfigError> {
    let mut fake = IndexMap::new();
    fake.insert("type".to_string(), "neuron".to_string());
    fake.insert("inputs".to_string(), str_of(src, "name").to_string());
    fake.insert("neuron".to_string(), str_of(src, "neuron").to_string());
    let mut dic = defaults(gen);
    if gen == Generation::A12 {
        fake.insert("gpu".to_string(), int_of(src, "gpu").to_string());
        dic.insert("gpu".into(), Value::Int(int_of(src, "gpu")));
    }
    let fake = Source::Fake(fake);
    let mut cx = Cx {
        gen,
        sec: Section { src: &fake, name },
        name: name.to_string(),
        prev,
        data: None,
        dic,
        log,
    };
    layers::parse_neuron_layer(&mut cx)?;
    Ok(cx.dic)
}

/// `detach_neuron_layers`: a `neuron=` key becomes a separate `neuron` layer that takes
/// over the layer's consumers. 2011 inserts it right after its source and renumbers
/// later indices (but leaves their `inputLayers` pointing at the source); 2012 adds it
/// to the dict with `src_layer`, visiting layers in dict order.
fn detach_neuron_layers(
    gen: Generation,
    layers: Vec<Dict>,
    log: &mut Vec<String>,
) -> Result<Vec<Dict>, ConfigError> {
    match gen {
        Generation::C1 => {
            let names: Vec<String> = layers
                .iter()
                .map(|l| str_of(l, "name").to_string())
                .collect();
            let taken: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut pending: std::collections::VecDeque<Dict> = layers.into();
            let mut new = Vec::new();
            while let Some(l) = pending.pop_front() {
                let detach = wants_neuron(&l);
                new.push(l);
                if !detach {
                    continue;
                }
                let src = new.last().unwrap();
                let name = unused_name(gen, &taken, &format!("{}_neuron", str_of(src, "name")))?;
                let dic = neuron_layer(gen, &name, src, &new, log)?;
                let src_idx = new.len() as i64 - 1;
                for later in pending.iter_mut() {
                    shift_indices(later, "inputs", src_idx);
                    shift_indices(later, "weightSourceLayerIndices", src_idx + 1);
                }
                new.push(dic);
            }
            Ok(new)
        }
        Generation::A12 => {
            let mut layers = layers;
            for i in order_of(gen, &layers) {
                if !wants_neuron(&layers[i]) {
                    continue;
                }
                let src_name = str_of(&layers[i], "name").to_string();
                let taken: Vec<&str> = layers.iter().map(|l| str_of(l, "name")).collect();
                let name = unused_name(gen, &taken, &format!("{src_name}_neuron"))?;
                let mut dic = neuron_layer(gen, &name, &layers[i], &layers, log)?;
                dic.insert("src_layer".into(), Value::Str(src_name.clone()));
                for l in layers.iter_mut() {
                    rewire(l, &src_name, &name);
                }
                layers.push(dic);
            }
            Ok(layers)
        }
    }
}

/// 2011: `[i + (i >= from) for i in l[key]]`.
fn shift_indices(l: &mut Dict, key: &str, from: i64) {
    if let Some(Value::List(items)) = l.get_mut(key) {
        for v in items.iter_mut() {
            if let Value::Int(i) = v {
                *i += (*i >= from) as i64;
            }
        }
    }
}

/// 2012: consumers of `src` now read `neuron` (names and references).
fn rewire(l: &mut Dict, src: &str, neuron: &str) {
    if !l.contains_key("inputs") {
        return;
    }
    for key in ["inputs", "inputLayers"] {
        if let Some(Value::List(items)) = l.get_mut(key) {
            for v in items.iter_mut() {
                match v {
                    Value::Str(s) | Value::LayerRef(s) if s == src => *s = neuron.to_string(),
                    _ => {}
                }
            }
        }
    }
}

/// The `optimize` pass: `actsTarget`/`actsGradTarget`, computing in place in an input
/// that nobody else reads. The 2012 version counts consumers by iterating the dict's
/// keys, so it never shares — and dies if a layer name contains "inputs".
fn optimize(gen: Generation, layers: &mut [Dict]) -> Result<(), ConfigError> {
    let order = order_of(gen, layers);
    for &li in &order {
        let mut targets = (-1i64, -1i64);
        let l = &layers[li];
        if l.contains_key("inputs") && !l["forceOwnActs"].truthy() {
            let outputs = int_of(l, "outputs");
            for (i, inp) in l["inputs"].as_list().unwrap().iter().enumerate() {
                let src = match gen {
                    Generation::C1 => &layers[inp.as_int().unwrap() as usize],
                    Generation::A12 => super::layer::find(layers, inp.as_str().unwrap()).unwrap(),
                };
                if int_of(src, "outputs") != outputs {
                    continue;
                }
                match gen {
                    Generation::C1 => {
                        let consumers = layers
                            .iter()
                            .filter(|ll| {
                                ll.get("inputs")
                                    .and_then(Value::as_list)
                                    .is_some_and(|v| v.contains(inp))
                            })
                            .count();
                        if consumers == 1 {
                            if !src["usesActs"].truthy() && !l["usesInputs"].truthy() {
                                targets.0 = i as i64;
                            }
                            targets.1 = i as i64;
                        }
                    }
                    Generation::A12 => {
                        if layers
                            .iter()
                            .any(|ll| str_of(ll, "name").contains("inputs"))
                        {
                            let name = str_of(l, "name");
                            return Err(ConfigError::layer(
                                name,
                                format!("Layer '{name}': a layer name containing 'inputs' breaks the original's memory-sharing pass (TypeError)"),
                            )
                            .crash());
                        }
                    }
                }
            }
        }
        layers[li].insert("actsTarget".into(), Value::Int(targets.0));
        layers[li].insert("actsGradTarget".into(), Value::Int(targets.1));
    }
    Ok(())
}

/// "Layer 'X' of type 'T' is unused": every non-cost layer must feed another.
fn check_unused(gen: Generation, layers: &[Dict]) -> Result<(), ConfigError> {
    let consumers: Vec<&[Value]> = layers
        .iter()
        .filter_map(|l| l.get("inputs").and_then(Value::as_list))
        .collect();
    for &li in &order_of(gen, layers) {
        let l = &layers[li];
        let (name, ty) = (str_of(l, "name"), str_of(l, "type"));
        if ty.starts_with("cost.") {
            continue;
        }
        if consumers.is_empty() {
            return Err(ConfigError::layer(
                name,
                "no layer has inputs (the original fails on max() of an empty list)",
            )
            .crash());
        }
        let used = consumers.iter().any(|inputs| {
            inputs.iter().any(|inp| match inp {
                Value::Int(i) => layers
                    .get(*i as usize)
                    .is_some_and(|u| str_of(u, "name") == name),
                Value::Str(s) => s == name,
                _ => false,
            })
        });
        if !used {
            return Err(ConfigError::layer(
                name,
                format!("Layer '{name}' of type '{ty}' is unused"),
            ));
        }
    }
    Ok(())
}

/// The parameter pass: required sections, each type's `add_params`, `conserveMem`.
fn add_params(
    gen: Generation,
    layers: &mut [Dict],
    params: &Source,
    path: &Path,
    model: &Model,
) -> Result<(), ConfigError> {
    let Source::Ini(ini) = params else {
        unreachable!("parameters come from a file")
    };
    let mut log = Vec::new();
    for li in order_of(gen, layers) {
        let dic = std::mem::take(&mut layers[li]);
        let (name, ltype) = (
            str_of(&dic, "name").to_string(),
            str_of(&dic, "type").to_string(),
        );
        if !ini.has_section(&name) && dic["requiresParams"].truthy() {
            return Err(ConfigError::layer(
                &name,
                format!(
                    "Layer '{name}' of type '{ltype}' requires extra parameters, but none given in file '{}'.",
                    path.display()
                ),
            ));
        }
        let mut cx = Cx {
            gen,
            sec: Section {
                src: params,
                name: &name,
            },
            name: name.clone(),
            prev: &[],
            data: Some(model),
            dic,
            log: &mut log,
        };
        layers::add_params(&ltype, &mut cx, params)?;
        cx.set("conserveMem", model.conserve_mem);
        layers[li] = cx.dic;
    }
    Ok(())
}
