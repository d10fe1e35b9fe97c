//! The options.py port against the `op` objects the original convnet.py pickled into its
//! checkpoints (golden/checkpoints): same option table, same pickled form, same
//! `print_values` lines, and the original's resume rules.

use convnet::checkpoint::load;
use convnet::checkpoint::value::to_json;
use convnet::config::value::Value;
use convnet::config::Generation;
use convnet::options::Options;
use std::path::PathBuf;

fn ckpt(gen: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("golden/checkpoints")
        .join(gen)
        .join("ckpt-p2")
}

fn original_op(gen: &str) -> convnet::checkpoint::value::Obj {
    load(&ckpt(gen)).unwrap().get("op").unwrap()
}

fn json(o: &convnet::checkpoint::value::PyObj) -> serde_json::Value {
    let mut s = String::new();
    to_json(o, &mut s);
    serde_json::from_str(&s).unwrap()
}

const GENS: [(&str, Generation); 2] = [("c1", Generation::C1), ("a12", Generation::A12)];

#[test]
fn option_tables_match_the_originals() {
    for (tag, gen) in GENS {
        let theirs = Options::from_pyobj(&original_op(tag)).unwrap();
        let mut ours = Options::convnet(gen);
        assert_eq!(ours.options.len(), theirs.options.len(), "{tag}");
        for (name, o) in ours.options.iter_mut() {
            let t = &theirs.options[name];
            // Values come from that run's command line; the definitions must agree.
            o.value = t.value.clone();
            o.value_given = t.value_given;
            assert_eq!(o, t, "{tag}: option {name}");
        }
        assert_eq!(
            json(&ours.to_pyobj()),
            json(&original_op(tag)),
            "{tag}: pickled form"
        );
    }
}

#[test]
fn print_values_matches_the_original() {
    for (tag, _) in GENS {
        let op = Options::from_pyobj(&original_op(tag)).unwrap();
        let expected =
            std::fs::read_to_string(ckpt(tag).with_file_name("ckpt-p2.print_values.txt")).unwrap();
        assert_eq!(
            op.print_values(),
            expected.lines().collect::<Vec<_>>(),
            "{tag}"
        );
    }
}

#[test]
fn resume_rules() {
    let old = Options::from_pyobj(&original_op("c1")).unwrap();
    // New hyper-parameters, more epochs: taken.
    let mut new = Options::convnet(Generation::C1);
    new.set("layer_params", "new-params.cfg").unwrap();
    new.set("num_epochs", "7").unwrap();
    let mut merged = old.clone();
    merged.merge_from(&new).unwrap();
    assert_eq!(
        merged.get("layer_params"),
        Some(&Value::Str("new-params.cfg".into()))
    );
    assert_eq!(merged.get("num_epochs"), Some(&Value::Int(7)));
    assert_eq!(merged.get("layer_def"), old.get("layer_def"));
    // A set-once option cannot be given again, even with the same value.
    new.set("layer_def", "x.cfg").unwrap();
    let err = old.clone().merge_from(&new).unwrap_err();
    assert_eq!(
        err.0,
        "Option --layer-def (Layer definition file) cannot be changed"
    );
}

#[test]
fn parsing_rules() {
    let mut op = Options::convnet(Generation::C1);
    assert_eq!(
        op.set("minibatch_size", "x").unwrap_err().0,
        "Unable to parse option --mini (Minibatch size): argument is not an integer"
    );
    op.set("layer_def", "l.cfg").unwrap();
    let err = op.clone().finish_parse().unwrap_err();
    assert!(err.0.ends_with("not supplied"), "{err}");
    // -f excuses everything.
    op.set("load_file", "ckpt").unwrap();
    op.finish_parse().unwrap();
    op.eval_expr_defaults().unwrap();
    assert_eq!(op.get("gpu"), Some(&Value::List(vec![Value::Int(-1)])));
    // --multiview-test needs --logreg-name in 2011.
    let mut op = Options::convnet(Generation::C1);
    op.set("load_file", "ckpt").unwrap();
    op.set("multiview_test", "1").unwrap();
    assert_eq!(
        op.finish_parse().unwrap_err().0,
        "Option --multiview-test (Cropped DP: test on multiple patches?) requires option --logreg-name (Cropped DP: logreg layer name (for --multiview-test))"
    );
}

#[test]
fn option_dicts_iterate_as_the_originals_did() {
    // The originals pickled their options dict in its iteration order.
    for (tag, gen) in [("c1", Generation::C1), ("a12", Generation::A12)] {
        let theirs = Options::from_pyobj(&original_op(tag)).unwrap();
        let ours = Options::convnet(gen);
        assert_eq!(
            ours.options.keys().collect::<Vec<_>>(),
            theirs.options.keys().collect::<Vec<_>>(),
            "{tag}"
        );
    }
}

#[test]
fn parse_order_puts_expression_defaults_last() {
    let op = Options::convnet(Generation::C1);
    let order = op.parse_order();
    assert_eq!(order.last().unwrap(), "gpu");
    assert_eq!(order[0], "testing_freq");
    let mut keys: Vec<&String> = op.options.keys().filter(|k| *k != "gpu").collect();
    keys.reverse();
    assert_eq!(order[..order.len() - 1].iter().collect::<Vec<_>>(), keys);
}

#[test]
fn usage_layout_is_the_same_with_and_without_bold() {
    let op = Options::convnet(Generation::A12);
    let plain = op.usage("convnet", false);
    let bold: Vec<String> = op
        .usage("convnet", true)
        .iter()
        .map(|l| l.replace("\x1b[1m", "").replace("\x1b[0m", ""))
        .collect();
    assert_eq!(plain, bold);
    assert!(plain.iter().any(|l| l.contains("[--wupdate-freq <int>")));
    let widths: std::collections::HashSet<usize> = plain[1..].iter().map(|l| l.len()).collect();
    assert_eq!(
        widths.len(),
        1,
        "every row is padded to the same width: {plain:#?}"
    );
}
