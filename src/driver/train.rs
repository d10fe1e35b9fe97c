//! Port of `IGPUModel` (gpumodel.py, 2011; the 2012 code ran with the same file) and
//! `ConvNet(IGPUModel)` of convnet.py, both generations: model state, data providers,
//! `init_model_state`, `start`, `train`, `get_test_error`, the printing of costs, test
//! results and weights, `save_state`, `--check-grads`, `--test-only`, the multiview
//! test and (2012) `--test-out` predictions.

use super::cli::Extras;
use super::format::{self, CostStyle, PyPrint};
use super::state::{self, CostRecord, LocalTime};
use super::Stop;
use super::{Env, Network};
use crate::checkpoint::value::{Dtype, NdArray, Obj, PyObj};
use crate::checkpoint::{self, model, writer};
use crate::config::convert;
use crate::config::value::{Array, Value};
use crate::config::{parse_layers, reparse_params, Generation, Model, Net};
use crate::data::cifar::Batch;
use crate::data::provider::{get_instance, DataProvider, DpParams};
use crate::net::{Cost, Device, NetOptions};
use crate::nvmatrix::NvMatrix;
use crate::options::Options;
use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

type Res<T> = Result<T, Stop>;

/// The data providers each generation registers, in the order its `dp_types` dict
/// iterated (printed under "Available data providers:").
fn data_providers(gen: Generation) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        (
            "default",
            "The default data provider; loads one batch into memory at a time",
        ),
        ("memory", "Loads the entire dataset into memory"),
        ("labeled", "Returns data and labels (used by classifiers)"),
        ("labeled-memory", "Combination labeled + memory"),
        ("dummy-n", "Dummy data provider for n-dimensional data"),
        (
            "dummy-labeled-n",
            "Labeled dummy data provider for n-dimensional data",
        ),
    ];
    match gen {
        Generation::C1 => v.extend([
            ("cifar", "CIFAR"),
            ("dummy-cn-n", "Dummy ConvNet"),
            ("cifar-cropped", "Cropped CIFAR"),
        ]),
        Generation::A12 => v.extend([
            ("dummy-lr-n", "Dummy ConvNet logistic regression"),
            ("inet-lr", "ImageNet logistic regression"),
            ("inet-lr-cropped", "ImageNet logistic regression cropped"),
            (
                "inet-lr-cropped-jpeg",
                "ImageNet logistic regression cropped JPEG",
            ),
            (
                "inet-rs-lr-cropped",
                "Random scale cropped ImageNet logistic regression",
            ),
            ("flickr-ce-cropped", "Flickr cross-entropy cropped"),
            ("dummy-ce-n", "Dummy cross-entropy"),
            ("flatmem", "Flat memory"),
            ("cifar", "CIFAR"),
            ("cifar-cropped", "Cropped CIFAR"),
        ]),
    }
    let names: Vec<&str> = v.iter().map(|(n, _)| *n).collect();
    crate::config::dictorder::iteration_order(&names)
        .into_iter()
        .map(|i| v[i])
        .collect()
}

/// A progress bar on stderr, drawn after `epoch.batch...` while the batch trains and
/// erased before its costs are printed; only when both stdout and stderr are terminals.
struct ProgressBar {
    enabled: bool,
    drawn: usize,
}

impl ProgressBar {
    fn new(enabled: bool) -> ProgressBar {
        ProgressBar { enabled, drawn: 0 }
    }
    fn draw(&mut self, fraction: f64) {
        if !self.enabled {
            return;
        }
        let n = (fraction.clamp(0.0, 1.0) * 20.0).round() as usize;
        let text = format!(
            " [{}{}] {:5.1}%",
            "#".repeat(n),
            "-".repeat(20 - n),
            fraction * 100.0
        );
        eprint!("{text}");
        let _ = std::io::stderr().flush();
        self.drawn = text.len();
    }
    fn clear(&mut self) {
        if self.enabled && self.drawn > 0 {
            eprint!("\x1b[{}D\x1b[K", self.drawn);
            let _ = std::io::stderr().flush();
            self.drawn = 0;
        }
    }
}

/// `ConvNet(IGPUModel)`: the options, the model state and what runs it.
pub struct ConvNetModel {
    gen: Generation,
    op: Options,
    extras: Extras,
    out: PyPrint<Box<dyn Write>>,
    /// Where the original's errors and lists went (stdout there; stderr here).
    err: Box<dyn Write>,
    /// `model_state['layers']`.
    net: Net,
    epoch: i64,
    batchnum: i64,
    train_outputs: Vec<CostRecord>,
    test_outputs: Vec<CostRecord>,
    /// The checkpoint directory under `--save-path`.
    save_file: String,
    device_ids: Vec<i64>,
    train_dp: Option<Box<dyn DataProvider>>,
    test_dp: Option<Box<dyn DataProvider>>,
    convnet: Option<Box<dyn Network>>,
    bar: ProgressBar,
}

fn int_list(v: Option<&Value>) -> Vec<i64> {
    v.and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_int)
        .collect()
}

/// The CUDA device of each tower: `--gpu`'s ids in order (a negative id, the
/// original's "fastest", and an absent `--gpu` give the tower's own index).
fn cuda_ordinals(ids: &[i64], towers: usize) -> Result<Vec<usize>, String> {
    if !ids.is_empty() && ids.len() < towers {
        return Err(format!(
            "--device=cuda: the net is placed on {towers} GPUs (gpu=) but --gpu names {}",
            ids.len()
        ));
    }
    Ok((0..towers)
        .map(|t| ids.get(t).map_or(t, |&g| usize::try_from(g).unwrap_or(t)))
        .collect())
}

fn usize_range(name: &str, r: &[i64]) -> Res<Vec<usize>> {
    r.iter()
        .map(|&b| {
            usize::try_from(b)
                .map_err(|_| Stop::error(format!("{name}: batch number {b} is negative")))
        })
        .collect()
}

impl ConvNetModel {
    fn int(&self, name: &str) -> i64 {
        self.op.get(name).and_then(Value::as_int).unwrap_or(0)
    }
    fn flag(&self, name: &str) -> bool {
        self.int(name) != 0
    }
    fn text(&self, name: &str) -> String {
        self.op
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
    fn range(&self, name: &str) -> Vec<i64> {
        int_list(self.op.get(name))
    }
    fn style(&self) -> CostStyle {
        match self.gen {
            Generation::C1 => CostStyle::C1,
            Generation::A12 => CostStyle::A12,
        }
    }
    fn net(&mut self) -> &mut dyn Network {
        self.convnet
            .as_deref_mut()
            .expect("the net is made before training")
    }

    /// `ConvNet(op, load_dic)` then `model.start()`; `--dump-layers` and `--bench` stop
    /// after the layers (ours).
    pub fn run(
        gen: Generation,
        op: Options,
        extras: Extras,
        ckpt: Option<Obj>,
        env: Env,
    ) -> Res<()> {
        let dump = extras.dump_layers;
        let Env {
            out,
            err,
            tty,
            make_net,
        } = env;
        let mut m = ConvNetModel {
            gen,
            op,
            extras,
            out: PyPrint::new(out),
            err,
            net: Net {
                generation: gen,
                layers: vec![],
            },
            epoch: 1,
            batchnum: 1,
            train_outputs: vec![],
            test_outputs: vec![],
            save_file: String::new(),
            device_ids: vec![],
            train_dp: None,
            test_dp: None,
            convnet: None,
            bar: ProgressBar::new(tty),
        };
        // get_gpus(): without the lock script a request for any GPU is -2, "fastest".
        m.device_ids = int_list(m.op.get("gpu"))
            .into_iter()
            .map(|g| if g < 0 { -2 } else { g })
            .collect();
        m.fill_excused_options()?;
        let state =
            match &ckpt {
                Some(c) => Some(c.get("model_state").ok_or_else(|| {
                    Stop::error("Error loading checkpoint: it has no 'model_state'")
                })?),
                None => None,
            };
        match &state {
            Some(ms) => {
                let load = m.text("load_file");
                m.save_file = if Path::new(&load).is_dir() {
                    load
                } else {
                    state::dirname(&load)
                };
                let int = |k: &str| match ms.get(k).as_deref() {
                    Some(PyObj::Int(i)) => Ok(*i),
                    _ => Err(Stop::error(format!(
                        "Error loading checkpoint: model_state has no int '{k}'"
                    ))),
                };
                m.epoch = int("epoch")?;
                m.batchnum = int("batchnum")?;
                let load_err = |e: String| Stop::error(format!("Error loading checkpoint: {e}"));
                m.train_outputs =
                    state::outputs_from_pyobj(ms.get("train_outputs")).map_err(load_err)?;
                m.test_outputs =
                    state::outputs_from_pyobj(ms.get("test_outputs")).map_err(load_err)?;
            }
            None => {
                m.save_file = state::checkpoint_dir_name(&LocalTime::now());
                m.epoch = 1;
                m.batchnum = m.range("train_batch_range").first().copied().unwrap_or(1);
            }
        }
        let ours = m.extras.dump_layers || m.extras.bench.is_some();
        if !ours {
            m.init_data_providers(state.is_some())?;
        }
        m.init_model_state(state.as_ref())?;
        if dump {
            let json = m.net.to_json();
            m.out.line(&json);
            m.out.flush();
            return Ok(());
        }
        m.out.line("=========================");
        m.out.line("Importing _ConvNet C++ module");
        m.out.flush();
        let opts = NetOptions {
            minibatch_size: m.int("minibatch_size").max(1) as usize,
            wupdate_freq: match gen {
                Generation::C1 => 1,
                Generation::A12 => m.int("wupdate_freq").max(1) as usize,
            },
            random_seed: m.extras.seed,
        };
        m.convnet = Some(
            make_net(&m.net, opts)
                .map_err(|e| Stop::error(format!("Error creating ConvNet: {e}")))?,
        );
        if m.extras.cuda {
            let net = m.convnet.as_mut().expect("made above");
            let ordinals = cuda_ordinals(&m.device_ids, net.towers()).map_err(Stop::error)?;
            let mut devices = Vec::new();
            for (t, &ordinal) in ordinals.iter().enumerate() {
                let device = Device::cuda(ordinal)
                    .map_err(|e| Stop::error(format!("--device=cuda: {e}")))?;
                let tower = if ordinals.len() > 1 {
                    format!(" (gpu={t})")
                } else {
                    String::new()
                };
                m.out
                    .line(&format!("Image kernels{tower} on {}", device.name()));
                devices.push(device);
            }
            net.set_devices(devices)
                .map_err(|e| Stop::error(e.to_string()))?;
        }
        if let Some(n) = m.extras.bench {
            let mini = opts.minibatch_size;
            let (dims, classes, seed) = (
                m.extras.data_dims.clone(),
                m.extras.num_classes,
                m.extras.seed,
            );
            let report = super::bench::run(m.net(), &dims, classes, mini, n, seed)
                .map_err(|e| Stop::error(e.to_string()))?;
            for l in report {
                m.out.line(&l);
            }
            m.out.flush();
            return Ok(());
        }
        m.start()
    }

    /// `fill_excused_options`: `--check-grads` blanks what it excuses.
    fn fill_excused_options(&mut self) -> Res<()> {
        if self.flag("check_grads") {
            self.op.set("save_path", "")?;
            self.op.set("train_batch_range", "0")?;
            self.op.set("test_batch_range", "0")?;
            self.op.set("data_path", "")?;
        }
        Ok(())
    }

    /// `init_data_providers`: the test provider, then the training provider at the
    /// model's `(epoch, batchnum)`, advanced by one batch when resuming.
    fn init_data_providers(&mut self, resumed: bool) -> Res<()> {
        // 2012: `color_noise`, and `scalar_mean` (a float option defaulting to False).
        let float = |name: &str| self.op.get(name).and_then(Value::as_f64).unwrap_or(0.0);
        let dp_params = DpParams {
            crop_border: self.int("crop_border").max(0) as usize,
            multiview_test: self.flag("multiview_test"),
            color_noise: float("color_noise"),
            scalar_mean: float("scalar_mean") != 0.0,
        };
        // `type or batches.meta['dp_type']`: an empty name also defers to the data.
        let dp_type = self.text("dp_type");
        let dp_type = (!dp_type.is_empty()).then_some(dp_type);
        let data_path = PathBuf::from(self.text("data_path"));
        let train_range = self.range("train_batch_range");
        let test_range = usize_range("--test-range", &self.range("test_batch_range"))?;
        let (epoch, batchnum) = if resumed {
            state::advanced(&train_range, self.epoch, self.batchnum)
        } else {
            (self.epoch, self.batchnum)
        };
        let seed = self.extras.seed;
        let made = get_instance(
            self.gen,
            &data_path,
            test_range,
            1,
            None,
            dp_type.as_deref(),
            dp_params,
            true,
            seed.wrapping_add(2),
        )
        .and_then(|test| {
            let train = get_instance(
                self.gen,
                &data_path,
                usize_range("--train-range", &train_range)
                    .map_err(|s| s.message.unwrap_or_default())?,
                epoch.max(0) as usize,
                usize::try_from(batchnum).ok(),
                dp_type.as_deref(),
                dp_params,
                false,
                seed.wrapping_add(1),
            )?;
            Ok((test, train))
        });
        match made {
            Ok((test, train)) => {
                self.test_dp = Some(test);
                self.train_dp = Some(train);
                Ok(())
            }
            Err(e) => {
                let mut lines = vec![
                    format!("Unable to create data provider: {e}"),
                    "Available data providers:".to_string(),
                ];
                for (name, desc) in data_providers(self.gen) {
                    lines.push(format!("    {name}: {desc}"));
                }
                let _ = writeln!(self.err, "{}", lines.join("\n"));
                Err(Stop::failed())
            }
        }
    }

    /// What the layer parsers ask of the model: the training provider's data dims and
    /// classes (ours: `--data-dims` / `--num-classes` where there is no provider).
    fn parser_model(&self) -> Model {
        let (data_dims, num_classes) = match &self.train_dp {
            Some(dp) => (
                (0..8).map(|i| dp.data_dims(i) as i64).collect(),
                dp.num_classes() as i64,
            ),
            None => (self.extras.data_dims.clone(), self.extras.num_classes),
        };
        let given = |n: &str| self.op.options.get(n).is_some_and(|o| o.value_given);
        // The 2012 gpumodel.py is missing; where --num-gpus is not given we take the
        // number of --gpu ids.
        let num_gpus = if !given("num_gpus") && given("gpu") {
            self.device_ids.len() as i64
        } else {
            self.int("num_gpus")
        };
        Model {
            data_dims,
            num_classes,
            num_gpus,
            conserve_mem: self.int("conserve_mem"),
            seed: self.extras.seed,
        }
    }

    /// Lines the layer parsers print: stdout, or stderr under `--dump-layers`.
    fn log(&mut self, lines: &[String]) {
        for l in lines {
            if self.extras.dump_layers {
                let _ = writeln!(self.err, "{l}");
            } else {
                self.out.line(l);
            }
        }
        self.out.flush();
    }

    /// `init_model_state`: parse the layers (a fresh model) or re-read the parameter
    /// file over the checkpoint's (resume); check `--logreg-name` (2011); apply
    /// `--conv-to-local` and `--unshare-weights`, then clear both options.
    fn init_model_state(&mut self, state: Option<&Obj>) -> Res<()> {
        let model = self.parser_model();
        let def = PathBuf::from(self.text("layer_def"));
        let params = PathBuf::from(self.text("layer_params"));
        match state {
            None => {
                let mut log = vec![];
                let parsed = parse_layers(self.gen, &def, &params, &model, &mut log);
                self.log(&log);
                self.net = parsed.map_err(|e| Stop::error(e.to_string()))?;
            }
            Some(ms) => {
                let layers = ms.get("layers").ok_or_else(|| {
                    Stop::error(
                        "Error loading checkpoint: the checkpoint has no model_state['layers']",
                    )
                })?;
                self.net = model::layers_from(&layers)
                    .map_err(|e| Stop::error(format!("Error loading checkpoint: {e}")))?;
                reparse_params(&mut self.net, &def, &params, &model)
                    .map_err(|e| Stop::error(e.to_string()))?;
            }
        }
        let logreg = self.text("logreg_name");
        if self.gen == Generation::C1 && !logreg.is_empty() {
            self.check_layer(&logreg, "cost.logreg")?;
        }
        let mut log = vec![];
        let to_local = self
            .op
            .get("conv_to_local")
            .and_then(Value::as_list)
            .map(<[Value]>::to_vec);
        let to_local: Vec<String> = to_local
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if !to_local.is_empty() {
            if self.gen == Generation::A12 {
                convert::conv_to_local(&mut self.net, 0, &mut log)
                    .map_err(|e| Stop::error(e.to_string()))?;
            }
            for i in 0..self.net.layers.len() {
                let l = &self.net.layers[i];
                let is = |k: &str, v: &str| l.get(k).and_then(Value::as_str) == Some(v);
                let named = to_local.iter().any(|n| is("name", n));
                if is("type", "conv") && named {
                    convert::conv_to_local(&mut self.net, i, &mut log)
                        .map_err(|e| Stop::error(e.to_string()))?;
                }
            }
        }
        let unshare: Vec<String> = self
            .op
            .get("unshare_weights")
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for name_str in unshare.iter().filter(|s| !s.is_empty()) {
            let Some((name, idx)) = layer_name(name_str) else {
                self.log(&log);
                return Err(Stop::error(format!(
                    "Invalid layer name '{name_str}'; unable to unshare."
                )));
            };
            let Some(i) = convert::layer_index(&self.net, &name) else {
                self.log(&log);
                return Err(Stop::error(format!(
                    "Layer '{name}' does not exist; unable to unshare"
                )));
            };
            convert::unshare_weights(&mut self.net, i, idx, &mut log);
        }
        self.log(&log);
        self.op.set_value("conv_to_local", Value::List(vec![]));
        self.op.set_value("unshare_weights", Value::List(vec![]));
        Ok(())
    }

    /// `get_layer_idx(name, check_type)`'s checks.
    fn check_layer(&self, name: &str, ty: &str) -> Res<()> {
        let Some(l) = self
            .net
            .layers
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(name))
        else {
            return Err(Stop::error(format!(
                "Layer with name '{name}' not defined."
            )));
        };
        let t = l.get("type").and_then(Value::as_str).unwrap_or_default();
        if t != ty {
            return Err(Stop::error(format!(
                "Layer with name '{name}' has type '{t}'; should be '{ty}'."
            )));
        }
        Ok(())
    }

    /// `start()`: `--test-only` tests once and stops; otherwise `train()`.
    fn start(&mut self) -> Res<()> {
        if self.flag("test_only") {
            let t = self.get_test_error()?;
            self.test_outputs.push(t);
            self.print_test_results()?;
            self.out.flush();
            return Ok(());
        }
        self.train()
    }

    fn batches_done(&self) -> i64 {
        state::num_batches_done(&self.range("train_batch_range"), self.epoch, self.batchnum)
    }

    /// `IGPUModel.train()`.
    fn train(&mut self) -> Res<()> {
        self.out.line("=========================");
        self.out.line("Training ConvNet");
        for l in self.op.print_values() {
            self.out.line(&l);
        }
        self.out.line("=========================");
        let ids: Vec<String> = self.device_ids.iter().map(i64::to_string).collect();
        self.out
            .line(&format!("Running on CUDA device(s) {}", ids.join(", ")));
        self.out
            .line(&format!("Current time: {}", LocalTime::now().asctime()));
        let dir = state::path_join(&self.text("save_path"), &self.save_file);
        self.out.line(&format!("Saving checkpoints to {dir}"));
        self.out.line("=========================");
        self.out.flush();
        let num_epochs = self.int("num_epochs");
        let testing_freq = self.int("testing_freq");
        let mut next = self
            .train_dp
            .as_mut()
            .unwrap()
            .next_batch()
            .map_err(Stop::error)?;
        while self.epoch <= num_epochs {
            let data = next;
            self.epoch = data.epoch as i64;
            self.batchnum = data.batchnum as i64;
            self.out.item(&format::iteration(self.epoch, self.batchnum));
            self.out.flush();
            let t0 = Instant::now();
            let cost = self.start_batch(&data, true)?;
            next = self
                .train_dp
                .as_mut()
                .unwrap()
                .next_batch()
                .map_err(Stop::error)?;
            self.train_outputs.push(CostRecord::from_cost(&cost));
            let style = self.style();
            let last = self.train_outputs.last_mut().unwrap();
            print_costs(&mut self.out, last, style)?;
            if testing_freq == 0 {
                return Err(Stop::error(
                    "--test-freq=0: integer division or modulo by zero",
                ));
            }
            if self.batches_done() % testing_freq == 0 {
                // sync_with_host: the weights back into the layer dicts.
                self.convnet.as_deref().unwrap().sync_to_host(&mut self.net);
                let t = self.get_test_error()?;
                self.test_outputs.push(t);
                self.print_test_results()?;
                self.conditional_save()?;
            }
            self.out
                .line(&format::train_time(t0.elapsed().as_secs_f64()));
            self.out.flush();
        }
        Ok(())
    }

    /// ConvNet's `start_batch`: the gradient check (which ends the program), the
    /// multiview test, or a training / test batch.
    fn start_batch(&mut self, data: &Batch, train: bool) -> Res<Cost> {
        if self.flag("check_grads") {
            self.out.flush();
            let convnet = self.convnet.as_deref_mut().unwrap();
            let raw = self.out.raw();
            convnet
                .check_gradients(&data.data, raw)
                .map_err(|e| Stop::error(e.to_string()))?;
            let _ = raw.flush();
            // The original's C++ side exits(0) here, whatever the outcome.
            return Err(Stop::done());
        }
        if !train && self.flag("multiview_test") {
            return self.multiview_test(data);
        }
        if train {
            let p = state::progress(
                &self.range("train_batch_range"),
                self.int("num_epochs"),
                self.epoch,
                self.batchnum,
            );
            self.bar.draw(p);
            let seed = batch_seed(self.extras.seed, self.epoch, self.batchnum);
            self.net().reseed(seed);
            let r = self.net().train_batch(&data.data, p);
            self.bar.clear();
            r.map_err(|e| Stop::error(e.to_string()))
        } else {
            self.net()
                .test_batch(&data.data)
                .map_err(|e| Stop::error(e.to_string()))
        }
    }

    /// `startMultiviewTest`: the test provider's views of each case; 2012 with
    /// `--test-out` also writes the view-averaged predictions of the batch.
    fn multiview_test(&mut self, data: &Batch) -> Res<Cost> {
        let views = self.test_dp.as_ref().map_or(1, |d| d.num_views());
        if views < 2 {
            return Err(Stop::error(
                "--multiview-test=1: the data provider has no views (use a cropped provider)",
            ));
        }
        let logreg = self.text("logreg_name");
        if self.gen == Generation::C1 && logreg.is_empty() {
            return Err(Stop::error("--multiview-test=1 needs --logreg-name"));
        }
        let cost = self
            .net()
            .multiview_test(&data.data, views, &logreg)
            .map_err(|e| Stop::error(e.to_string()))?;
        let test_out = self.text("test_out");
        if self.gen == Generation::A12 && !test_out.is_empty() && !logreg.is_empty() {
            self.write_test_preds(data, views, &logreg, &test_out)?;
        }
        Ok(cost)
    }

    /// 2012 `--test-out`: `<dir>/test_preds_<batchnum>` = `{'data': probs (cases x
    /// classes, float32, averaged over the views), 'note': 'generated from <save
    /// file>'}`. The probabilities are the logreg layer's input, read per view with
    /// [`crate::net::ConvNet::features`] and averaged as `LogregCostLayer` does (sum in view
    /// order, then times `1/views` in float32).
    fn write_test_preds(&mut self, data: &Batch, views: usize, logreg: &str, dir: &str) -> Res<()> {
        let probs_layer = self
            .net
            .layers
            .iter()
            .find(|l| l.get("name").and_then(Value::as_str) == Some(logreg))
            .and_then(|l| l.get("inputs").and_then(Value::as_list))
            .and_then(|inputs| inputs.get(1))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Stop::error(format!(
                    "--test-out: '{logreg}' is not a logreg layer with two inputs"
                ))
            })?;
        let cases = data.data[0].cols() / views;
        let mut acc: Option<NvMatrix> = None;
        for v in 0..views {
            let slice: Vec<NvMatrix> = data
                .data
                .iter()
                .map(|m| columns(m, v * cases, (v + 1) * cases))
                .collect();
            let (_, p) = self
                .net()
                .features(&slice, &probs_layer)
                .map_err(|e| Stop::error(e.to_string()))?;
            match &mut acc {
                None => acc = Some(p),
                Some(a) => {
                    for (x, y) in a.data_mut().iter_mut().zip(p.data()) {
                        *x += *y;
                    }
                }
            }
        }
        let mut probs = acc.unwrap_or_default();
        let scale = (1.0 / views as f64) as f32;
        for x in probs.data_mut() {
            *x *= scale;
        }
        let array = NdArray {
            dtype: Dtype {
                kind: 'f',
                size: 4,
                big_endian: false,
            },
            shape: vec![probs.rows() as u64, probs.cols() as u64],
            fortran: false,
            data: probs.data().iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        let note = format!("generated from {}", self.save_file);
        let keys = ["data", "note"];
        let values: [Obj; 2] = [
            Rc::new(PyObj::Array(RefCell::new(array))),
            model::pystr(&note),
        ];
        let items = crate::config::dictorder::iteration_order(&keys)
            .into_iter()
            .map(|i| (model::pystr(keys[i]), values[i].clone()))
            .collect();
        let obj: Obj = Rc::new(PyObj::Dict(RefCell::new(items)));
        let dir = Path::new(dir);
        std::fs::create_dir_all(dir)
            .and_then(|_| {
                writer::save_atomic(
                    &dir.join(format!("test_preds_{}", data.batchnum)),
                    &writer::dumps(&obj),
                    false,
                )
            })
            .map_err(|e| Stop::error(format!("--test-out: {e}")))
    }

    /// `get_test_error()`: one test batch (`--test-one=1`) or the rest of the test range,
    /// from wherever the test provider's rotation stands; costs summed over them.
    fn get_test_error(&mut self) -> Res<CostRecord> {
        let last = self.range("test_batch_range").last().copied().unwrap_or(0);
        let test_one = self.flag("test_one");
        let test_only = self.flag("test_only");
        let mut next = Some(
            self.test_dp
                .as_mut()
                .unwrap()
                .next_batch()
                .map_err(Stop::error)?,
        );
        let mut outputs = vec![];
        while let Some(data) = next.take() {
            let cost = self.start_batch(&data, false)?;
            let load_next = !test_one && (data.batchnum as i64) < last;
            if load_next {
                next = Some(
                    self.test_dp
                        .as_mut()
                        .unwrap()
                        .next_batch()
                        .map_err(Stop::error)?,
                );
            }
            outputs.push(CostRecord::from_cost(&cost));
            if test_only {
                let line = format!(
                    "batch {}: {}",
                    data.batchnum,
                    outputs.last().unwrap().repr()
                );
                self.out.line(&line);
            }
            self.out.flush();
        }
        Ok(CostRecord::aggregate(&outputs))
    }

    /// `print_test_results()` of the generation, with the weight summaries.
    fn print_test_results(&mut self) -> Res<()> {
        let style = self.style();
        match self.gen {
            Generation::C1 => {
                self.out.line("");
                self.out
                    .line("======================Test output======================");
                print_costs(&mut self.out, self.test_outputs.last_mut().unwrap(), style)?;
                self.out.line("");
            }
            Generation::A12 => {
                self.out
                    .line("\n======================Test output======================");
                print_costs(&mut self.out, self.test_outputs.last_mut().unwrap(), style)?;
                self.out
                    .line("\n----------------------Averages-------------------------");
                let k = self.range("test_batch_range").len();
                let n = self.test_outputs.len();
                let mut avg = CostRecord::aggregate(&self.test_outputs[n.saturating_sub(k)..]);
                avg.num_cases = n.min(k) as i64;
                print_costs(&mut self.out, &mut avg, style)?;
            }
        }
        let rule = "-------------------------------------------------------";
        match self.gen {
            Generation::C1 => self.out.item(rule),
            Generation::A12 => self.out.item(&format!("\n{rule}")),
        }
        for (line, text) in weight_summaries(&self.net) {
            if line {
                self.out.line(&text);
            } else {
                self.out.item(&text);
            }
        }
        self.out.line("");
        self.out.flush();
        Ok(())
    }

    /// ConvNet's `conditional_save`: always `save_state()`.
    fn conditional_save(&mut self) -> Res<()> {
        let dir = state::path_join(&self.text("save_path"), &self.save_file);
        let ckpt = model::checkpoint(
            model::layers(&self.net),
            state::outputs_to_pyobj(&self.train_outputs),
            state::outputs_to_pyobj(&self.test_outputs),
            self.epoch,
            self.batchnum,
            self.op.to_pyobj(),
        );
        checkpoint::save(
            Path::new(&dir),
            self.epoch.max(0) as u64,
            self.batchnum.max(0) as u64,
            &writer::dumps(&ckpt),
            self.flag("zip_save"),
            self.int("max_filesize_mb").max(0) as u64,
        )
        .map_err(|e| Stop::error(format!("cannot save the checkpoint in {dir}: {e}")))?;
        self.out
            .line("-------------------------------------------------------");
        self.out.line(&format!("Saved checkpoint to {dir}"));
        self.out
            .item("=======================================================");
        Ok(())
    }
}

/// Columns `a..b` of a `(rows, cases)` matrix as a new matrix of the same orientation.
fn columns(m: &NvMatrix, a: usize, b: usize) -> NvMatrix {
    let rows = m.rows();
    let mut out = NvMatrix::new(rows, b - a, m.is_trans());
    for i in 0..rows {
        for j in a..b {
            out.set(i, j - a, m.get(i, j));
        }
    }
    out
}

/// `WeightLayerParser.get_layer_name`: `name` or `name[idx]`, spaces around allowed.
pub fn layer_name(s: &str) -> Option<(String, Option<usize>)> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (name, idx) = match t.find('[') {
        Some(i) => {
            let idx = t[i + 1..].strip_suffix(']')?;
            if idx.is_empty() || !idx.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (&t[..i], Some(idx.parse().ok()?))
        }
        None => (t, None),
    };
    if name.is_empty() || name.chars().any(|c| c.is_ascii_whitespace() || c == '[') {
        return None;
    }
    Some((name.to_string(), idx))
}

/// ConvNet's `print_costs`: each cost's values divided in place by the case count and
/// printed (`name: ` then the values joined by `, `); a NaN or infinity prints
/// `^ got nan or inf!` and ends the program with status 1.
pub fn print_costs<W: Write>(
    out: &mut PyPrint<W>,
    rec: &mut CostRecord,
    style: CostStyle,
) -> Res<()> {
    let n = rec.num_cases as f64;
    for (name, values) in rec.costs.iter_mut() {
        for v in values.iter_mut() {
            *v /= n;
        }
        out.item(&format!("{name}: "));
        let shown: Vec<String> = values.iter().map(|v| style.value(*v)).collect();
        out.item(&shown.join(", "));
        if values.iter().any(|v| !v.is_finite()) {
            out.line("^ got nan or inf!");
            out.flush();
            return Err(Stop::failed());
        }
    }
    Ok(())
}

/// The weight part of `print_test_results`, as `print` operations: `(true, s)` is
/// `print s`, `(false, s)` is `print s,`. 2011: layers in list order; 2012: by name.
pub fn weight_summaries(net: &Net) -> Vec<(bool, String)> {
    let mut order: Vec<usize> = (0..net.layers.len()).collect();
    let name = |i: usize| {
        net.layers[i]
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if net.generation == Generation::A12 {
        order.sort_by_key(|&i| name(i));
    }
    let mean = |v: Option<&Value>| match v {
        Some(Value::Array(a)) => format::mean_abs_f32(&a.data),
        _ => f32::NAN,
    };
    let arrays = |v: Option<&Value>| -> Vec<Array> {
        match v {
            Some(Value::List(l)) => l
                .iter()
                .filter_map(|x| match x {
                    Value::Array(a) => Some(a.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        }
    };
    let mut ops = vec![];
    for i in order {
        let l = &net.layers[i];
        let Some(w) = l.get("weights") else { continue };
        let n = name(i);
        match w {
            Value::Array(_) => ops.push((
                false,
                format!(
                    "\n{}",
                    format::weights_line(&n, "weights", mean(Some(w)), mean(l.get("weightsInc")))
                ),
            )),
            Value::List(_) => {
                ops.push((true, String::new()));
                let lines: Vec<String> = arrays(Some(w))
                    .iter()
                    .zip(arrays(l.get("weightsInc")).iter())
                    .enumerate()
                    .map(|(k, (w, wi))| {
                        format::weights_line(
                            &n,
                            &format!("weights[{k}]"),
                            format::mean_abs_f32(&w.data),
                            format::mean_abs_f32(&wi.data),
                        )
                    })
                    .collect();
                ops.push((false, lines.join("\n")));
            }
            _ => {}
        }
        ops.push((
            false,
            format!(
                "\n{}",
                format::weights_line(
                    &n,
                    "biases",
                    mean(l.get("biases")),
                    mean(l.get("biasesInc"))
                )
            ),
        ));
    }
    ops
}

/// The random seed of training batch `epoch.batchnum`: `--seed` mixed with the batch's
/// position (SplitMix64's finaliser), so each batch draws its own masks and a resumed
/// run draws the same ones as an uninterrupted run.
fn batch_seed(seed: u64, epoch: i64, batchnum: i64) -> u64 {
    let mut z = seed ^ ((epoch as u64) << 32 | batchnum as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
