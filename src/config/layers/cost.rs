//! Port of layer.py's `CostParser` and its subclasses: logreg, sum2 (both
//! generations), crossent, crossent2, rflickr, msm, gsum2 and tica (2012).

use crate::config::layer::{parse_with_inputs, str_of, Cx};
use crate::config::value::Value;
use crate::config::{ConfigError, Generation};

/// `CostParser.parse` and the per-type checks of the cost parsers.
pub(super) fn parse_cost(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    let arity = match ltype {
        "cost.sum2" | "cost.tica" => 1,
        _ => 2,
    };
    parse_with_inputs(cx, Some(arity))?;
    cx.set("requiresParams", true);
    cx.dic.shift_remove("neuron");
    let name = cx.name.clone();
    let classes = cx.data().num_classes;
    let widths = cx.ints("numInputs");
    let input_name = |i: usize| match cx.gen {
        Generation::C1 => str_of(cx.input(i), "name").to_string(),
        Generation::A12 => cx.dic["inputs"].as_list().unwrap()[i]
            .as_str()
            .unwrap_or("")
            .to_string(),
    };
    let softmax_needed = |cx: &Cx, capital: bool| -> Result<(), ConfigError> {
        if str_of(cx.input(1), "type") != "softmax" {
            let s = if capital { "Second" } else { "second" };
            return Err(cx
                .err(format!("Layer '{name}': {s} input must be softmax layer"))
                .key("inputs"));
        }
        Ok(())
    };
    let classes_needed = |cx: &Cx, i: usize, what: &str| -> Result<(), ConfigError> {
        if widths[i] != classes {
            return Err(cx.err(format!(
                "Layer '{name}': {what} '{}' must produce {classes} outputs, because that is the number of classes in the dataset",
                input_name(i)
            )).key("inputs"));
        }
        Ok(())
    };
    let label = match ltype {
        "cost.logreg" => {
            if widths[0] != 1 {
                return Err(cx
                    .err(format!(
                        "Layer '{name}': dimensionality of first input must be 1"
                    ))
                    .key("inputs"));
            }
            softmax_needed(cx, false)?;
            classes_needed(cx, 1, "softmax input")?;
            "logistic regression cost".to_string()
        }
        "cost.crossent" => {
            if widths[0] != classes {
                return Err(cx
                    .err(format!("Layer '{name}': Dimensionality of first input must be equal to number of labels"))
                    .key("inputs"));
            }
            softmax_needed(cx, true)?;
            if widths[1] != classes {
                return Err(cx.err(format!(
                    "Layer '{name}': Softmax input '{}' must produce {classes} outputs, because that is the number of classes in the dataset",
                    input_name(1)
                )).key("inputs"));
            }
            "cross-entropy cost".to_string()
        }
        "cost.crossent2" | "cost.rflickr" => {
            for i in 0..2 {
                classes_needed(cx, i, "input")?;
            }
            if cx.input(1).get("neuron").and_then(Value::as_str) != Some("logistic") {
                let line = format!(
                    "WARNING: Layer '{name}': input '{}' is not logistic, results may not be what you intend.",
                    input_name(1)
                );
                cx.print(line);
            }
            let kind = if ltype == "cost.crossent2" {
                "elementwise cross-entropy"
            } else {
                "robust Flickr"
            };
            format!("{kind} cost")
        }
        "cost.msm" => {
            if widths[0] != 1 {
                return Err(cx
                    .err(format!(
                        "Layer '{name}': dimensionality of first input must be 1"
                    ))
                    .key("inputs"));
            }
            classes_needed(cx, 1, "input")?;
            cx.set("numOut", widths[1]);
            "multi-softmax cost".to_string()
        }
        "cost.sum2" => "sum-of-squares cost".to_string(),
        "cost.gsum2" => {
            cx.input_dims(&[Some(1), None])?;
            "gated sum-of-squares cost".to_string()
        }
        "cost.tica" => {
            for key in ["channels", "sizeX"] {
                let v = cx.sec.req_int(key)?;
                cx.set(key, v);
            }
            cx.set_img_dims()?;
            cx.verify_img_size()?;
            "TICA cost".to_string()
        }
        other => unreachable!("unregistered cost type {other}"),
    };
    cx.initialized(&label, "");
    Ok(())
}

pub(super) fn add_cost_params(cx: &mut Cx, ltype: &str) -> Result<(), ConfigError> {
    let coeff = cx.sec.req_float("coeff")?;
    cx.set("coeff", coeff);
    if cx.gen == Generation::A12 {
        match ltype {
            "cost.logreg" => {
                let v = cx.sec.int("topk")?.unwrap_or(1);
                cx.set("topk", v);
            }
            "cost.msm" => {
                for key in ["setSize", "threads"] {
                    let v = cx.sec.req_int(key)?;
                    cx.set(key, v);
                }
                let (set_size, threads, num_out) =
                    (cx.int("setSize"), cx.int("threads"), cx.int("numOut"));
                // The original passes '%d' where its range check wants a formatter, so a
                // failing check crashes instead of printing its message.
                if set_size < 1 || set_size > num_out - 1 {
                    return Err(cx.crash(
                        "setSize",
                        &format!("must be in the range 1-{}", num_out - 1),
                    ));
                }
                if !(1..=32).contains(&threads) {
                    return Err(cx.crash("threads", "must be in the range 1-32"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}
