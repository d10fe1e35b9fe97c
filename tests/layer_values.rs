//! Values the dump does not show: array contents and orders the parsers create.

use convnet::config::value::Value;
use convnet::config::{parse_layers, Generation, Model, Net};

fn parse(gen: Generation, def: &str, params: &str, dims: Vec<i64>) -> Net {
    let dir = std::env::temp_dir().join(format!(
        "convnet-values-{}-{}",
        std::process::id(),
        def.len()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("def.cfg"), def).unwrap();
    std::fs::write(dir.join("params.cfg"), params).unwrap();
    let model = Model {
        data_dims: dims,
        num_classes: 10,
        num_gpus: 1,
        conserve_mem: 0,
        seed: 7,
    };
    parse_layers(
        gen,
        &dir.join("def.cfg"),
        &dir.join("params.cfg"),
        &model,
        &mut Vec::new(),
    )
    .unwrap()
}

fn layer<'n>(net: &'n Net, name: &str) -> &'n convnet::config::value::Dict {
    net.layers
        .iter()
        .find(|l| l["name"] == Value::Str(name.into()))
        .unwrap()
}

#[test]
fn blur_filter_is_numpy_bit_for_bit() {
    // Bits printed by Python 2.7.18 + numpy 1.16.6 for the original's formula.
    let cases: [(i64, f64, &[u32]); 3] = [
        (
            9,
            1.7,
            &[
                0x3c73212f, 0x3d4c0d37, 0x3df25312, 0x3e4b99d5, 0x3e720e85, 0x3e4b99d5, 0x3df25312,
                0x3d4c0d37, 0x3c73212f,
            ],
        ),
        (
            5,
            0.3,
            &[0x2f73b4c1, 0x3b7b69bd, 0x3f7e092b, 0x3b7b69bd, 0x2f73b4c1],
        ),
        (3, 2.0, &[0x3ea369f6, 0x3eb92c16, 0x3ea369f6]),
    ];
    for (size, stdev, bits) in cases {
        let def = format!(
            "[data]\ntype=data\ndataIdx=0\n[b]\ntype=blur\ninputs=data\nchannels=3\nfilterSize={size}\nstdev={stdev}\n\
             [s]\ntype=cost.sum2\ninputs=b\n"
        );
        let net = parse(Generation::C1, &def, "[s]\ncoeff=1\n", vec![3 * 16 * 16]);
        let Value::Array(f) = &layer(&net, "b")["filter"] else {
            panic!("filter is an array")
        };
        let got: Vec<u32> = f.data.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, bits, "filterSize={size} stdev={stdev}");
    }
}

#[test]
fn weights_have_the_original_shapes_orders_and_inits() {
    let def = "[data]\ntype=data\ndataIdx=0\n[labels]\ntype=data\ndataIdx=1\n\
               [conv1]\ntype=conv\ninputs=data\nchannels=3\nfilters=16\nfilterSize=5\npadding=2\nstride=1\ninitW=0.5\npartialSum=4\ninitB=1.5\n\
               [sparse]\ntype=conv\ninputs=conv1\nchannels=16\nfilters=16\nfilterSize=3\ngroups=4\nrandSparse=1\nfilterChannels=8\ninitW=0.1\npartialSum=0\nsharedBiases=0\n\
               [fc]\ntype=fc\ninputs=sparse\noutputs=10\ninitW=0.01\n\
               [probs]\ntype=softmax\ninputs=fc\n[cost]\ntype=cost.logreg\ninputs=labels,probs\n";
    // [DEFAULT] values reach every section, but each layer still needs its own.
    let params = "[DEFAULT]\nepsW=0.1\nepsB=0.1\nmomW=0.9\nmomB=0.9\nwc=0\n[conv1]\n[sparse]\n[fc]\n[cost]\ncoeff=1\n";
    for gen in [Generation::C1] {
        let net = parse(gen, def, params, vec![3 * 8 * 8, 1]);
        let conv = layer(&net, "conv1");
        let Value::Array(w) = &conv["weights"].as_list().unwrap()[0] else {
            panic!()
        };
        assert_eq!((w.rows, w.cols, w.fortran), (75, 16, false));
        let mean_sq = w.data.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.data.len() as f64;
        assert!(
            (mean_sq - 0.25).abs() < 0.1,
            "initW scales N(0,1): {mean_sq}"
        );
        let Value::Array(b) = &conv["biases"] else {
            panic!()
        };
        assert!(b.data.iter().all(|&v| v == 1.5) && (b.rows, b.cols) == (16, 1));
        assert_eq!(conv["initB"], Value::Float(1.5));
        assert_eq!(conv["padding"], Value::List(vec![Value::Int(-2)]));

        let sparse = layer(&net, "sparse");
        let conns: Vec<i64> = sparse["filterConns"].as_list().unwrap()[0]
            .as_list()
            .unwrap()
            .iter()
            .filter_map(Value::as_int)
            .collect();
        assert_eq!(
            conns.len(),
            32,
            "overSample (2) permutations of 16 channels"
        );
        for half in conns.chunks(16) {
            let mut h = half.to_vec();
            h.sort();
            assert_eq!(h, (0..16).collect::<Vec<_>>());
        }
        let Value::Array(b) = &sparse["biases"] else {
            panic!()
        };
        assert_eq!(
            (b.rows, b.cols),
            (6 * 6 * 64, 1),
            "unshared biases: one per module (6x6) and filter (16 x 4 groups)"
        );

        let fc = layer(&net, "fc");
        assert_eq!(fc["initB"], Value::Int(0), "the default initB is the int 0");
        let Value::Array(w) = &fc["weights"].as_list().unwrap()[0] else {
            panic!()
        };
        assert_eq!((w.rows, w.cols, w.fortran), (6 * 6 * 64, 10, true));
    }
}
