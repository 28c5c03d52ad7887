//! The command line: arguments (clap) and what each subcommand does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bench::{self, paper_train_batch, PAPER_MODELS};
use crate::error::{Error, Result};
use crate::job::JobSpec;
use crate::models::{ModelName, Shape};
use crate::onnx::cli as onnx_cli;
use crate::progress::Progress;
use crate::report;
use crate::run::{run_local, run_party_process, BackendKind, Report};

/// triad: private machine learning on three servers (2-out-of-3 replicated secret
/// sharing, the CryptGPU protocols).
#[derive(Debug, Parser)]
#[command(name = "triad", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Three parties on this machine train LeNet privately on the bundled MNIST digits,
    /// classify the 2,000 test digits privately, and compare with the plaintext twin.
    Demo(DemoArgs),
    /// Private training (then private inference on the test split), three parties in
    /// this process.
    Train(JobArgs),
    /// Private inference, three parties in this process.
    Infer(JobArgs),
    /// The paper's timing tables: private inference at batch 1 and training per iteration.
    Bench(BenchArgs),
    /// Write a CA, the three parties' certificates and keys, and a parties file.
    Keygen(KeygenArgs),
    /// Run one party of three processes over mutual TLS.
    Party(PartyArgs),
    /// Run one of three long-running servers of private inference as a service: enrolled
    /// clients upload models and classify inputs as secret shares, until SIGTERM.
    Serve(crate::serve::ServeArgs),
    /// A client of `triad serve`: upload a model as shares, allow or refuse other
    /// clients, classify NumPy inputs privately, or run a load test.
    Client(crate::client::ClientArgs),
    /// Know a model before running it: every node with its shape, every tensor, and the
    /// exact bytes and rounds of private inference and a training step (dry run).
    Inspect(InspectArgs),
}

/// Options of `inspect`.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// An ONNX file (PyTorch's exporters, opset 13 to 21).
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    pub onnx: Option<PathBuf>,
    /// A model of the zoo.
    #[arg(long, value_enum)]
    pub model: Option<ModelName>,
    /// The dataset shape of a zoo model (default: the model's).
    #[arg(long, value_enum)]
    pub dataset: Option<Shape>,
    /// Batch size of the training step's dry run.
    #[arg(long, default_value_t = 8)]
    pub train_batch: usize,
    /// The range check's bound on the inputs' magnitude (1: pixels scaled to [0, 1];
    /// infer and train use the largest magnitude of the actual inputs).
    #[arg(long, default_value_t = 1.0)]
    pub input_bound: f64,
    /// Fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 20)]
    pub frac_bits: u32,
}

/// Dataset choices of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    /// MNIST (bundled, or IDX files with --data).
    Mnist,
    /// CIFAR-10 (binary files with --data, or --random).
    Cifar10,
    /// Tiny ImageNet shape (random inputs).
    TinyImagenet,
    /// ImageNet shape (random inputs).
    Imagenet,
    /// Random inputs of the model's default dataset shape.
    Random,
}

/// Options of `train`, `infer` and `party ... train|infer`.
#[derive(Clone, Debug, Args)]
pub struct JobArgs {
    /// The model.
    #[arg(long, value_enum, default_value = "lenet")]
    pub model: ModelName,
    /// The dataset (default: mnist for LeNet, cifar10 for AlexNet and VGG-16, imagenet for ResNets).
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetArg>,
    /// An ONNX model of the owner's (PyTorch's exporters) instead of a zoo model.
    #[arg(long, value_name = "FILE")]
    pub onnx: Option<PathBuf>,
    /// With --onnx: the owner's inputs, a NumPy file [N, C, H, W] or [N, F] (float32 or float64;
    /// train without them: the bundled MNIST, or --data).
    #[arg(long, value_name = "FILE.npy", requires = "onnx")]
    pub inputs: Option<PathBuf>,
    /// Infer with --onnx: the owner writes the opened outputs here, a NumPy file [N, outputs] (float64).
    #[arg(long, value_name = "FILE.npy", requires = "onnx")]
    pub output: Option<PathBuf>,
    /// party --id 1|2 ... infer|train: the model comes from the owner (party 0 sends its
    /// public graph and job, never weights or data; this party prints what it received).
    #[arg(long, conflicts_with_all = ["onnx", "inputs", "output", "labels"])]
    pub onnx_from_owner: bool,
    /// With --onnx-from-owner: refuse unless party 0's graph has this SHA-256 (64 hex
    /// digits; party 0 and `triad inspect` print it).
    #[arg(long, value_name = "SHA256HEX", requires = "onnx_from_owner")]
    pub expect_graph: Option<String>,
    /// Train with --onnx: the owner's labels, a NumPy file [N] of integer classes.
    #[arg(long, value_name = "FILE.npy", requires = "onnx")]
    pub labels: Option<PathBuf>,
    /// Random inputs of the dataset's shape instead of real data.
    #[arg(long)]
    pub random: bool,
    /// Dataset directory of the owner: MNIST IDX files, or CIFAR-10 data_batch_*.bin and test_batch.bin.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Batch size (train: 128; infer: 250, or 1 with random inputs).
    #[arg(long)]
    pub batch: Option<usize>,
    /// Batch size of the private evaluation after training.
    #[arg(long, default_value_t = 250)]
    pub eval_batch: usize,
    /// Epochs.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// Stop training after this many steps in total.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Fractional bits of the fixed-point encoding.
    #[arg(long, default_value_t = 20)]
    pub frac_bits: u32,
    /// The overflow guard: after every layer (forward, backward and each SGD update) the parties check securely that all values stay within the fixed-point range, and stop naming the layer at the first that does not; opens one bit per checked tensor ("all in range") to every party, costs about 3-4x the bytes. All three parties must choose alike.
    #[arg(long)]
    pub guard: bool,
    /// Public seed: initial weights (without --weights), batch order, random inputs.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Test samples to classify privately (default: the whole test split; train with random inputs: none).
    #[arg(long)]
    pub samples: Option<usize>,
    /// The owner's plaintext initial weights (safetensors, F32 or F64, named <layer>.<param>).
    #[arg(long, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Load --weights even if triad saved them for another model (every tensor's name and shape must still fit).
    #[arg(long, requires = "weights")]
    pub force_weights: bool,
    /// The owner writes the opened final weights here (safetensors, F64).
    #[arg(long, value_name = "FILE")]
    pub save_weights: Option<PathBuf>,
    /// Each party writes its own shares to DIR/party-N.safetensors at the end of training.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Also checkpoint every N training steps.
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Each party resumes from its shares in DIR/party-N.safetensors.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Also train the plaintext twin (owner only) and report its accuracy.
    #[arg(long)]
    pub twin: bool,
    /// Backend and output.
    #[command(flatten)]
    pub out: OutputArgs,
}

impl JobArgs {
    /// The job these options describe.
    pub fn spec(&self, train: bool) -> Result<JobSpec> {
        let (dataset, random) = match self.dataset {
            None | Some(DatasetArg::Random) => (self.model.default_dataset(), self.random || self.dataset.is_some()),
            Some(DatasetArg::Mnist) => (Shape::Mnist, self.random),
            Some(DatasetArg::Cifar10) => (Shape::Cifar10, self.random),
            Some(DatasetArg::TinyImagenet) => (Shape::TinyImagenet, true),
            Some(DatasetArg::Imagenet) => (Shape::Imagenet, true),
        };
        if random && self.data.is_some() {
            return Err(Error::Usage("--data and random inputs exclude each other".into()));
        }
        if self.twin && self.resume.is_some() {
            return Err(Error::Usage("--twin needs the initial weights, which --resume does not have".into()));
        }
        let batch = self.batch.unwrap_or(if train {
            128
        } else if random {
            1
        } else {
            250
        });
        if batch == 0 || self.eval_batch == 0 {
            return Err(Error::Usage("batch sizes must be positive".into()));
        }
        check_sgd_constants(self.lr, self.momentum, self.weight_decay, self.frac_bits)?;
        let spec = JobSpec {
            train,
            model: self.model,
            dataset,
            random,
            data: self.data.clone(),
            batch,
            epochs: self.epochs,
            steps: self.steps,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            frac_bits: self.frac_bits,
            guard: self.guard,
            seed: self.seed,
            samples: self.samples,
            eval_batch: if train { self.eval_batch } else { batch },
            weights: self.weights.clone(),
            force_weights: self.force_weights,
            save_weights: self.save_weights.clone(),
            checkpoint: self.checkpoint.clone(),
            checkpoint_every: self.checkpoint_every,
            resume: self.resume.clone(),
            twin: self.twin && train,
        };
        spec.net()?;
        Ok(spec)
    }
}

/// Every public constant of SGD must survive its fixed-point encoding (the products by
/// them are `Backend::scale`s): one line naming the option otherwise, before any party
/// starts.
pub(crate) fn check_sgd_constants(lr: f64, momentum: f64, weight_decay: f64, frac_bits: u32) -> Result<()> {
    for (name, c) in [("--lr", lr), ("--momentum", momentum), ("--weight-decay", weight_decay)] {
        if !c.is_finite() || c < 0.0 {
            return Err(Error::Usage(format!("{name} {c}: a finite value, not negative")));
        }
        triad_layers::check_public_multiplier(c, triad_layers::scale_bits(frac_bits, c))
            .map_err(|e| Error::Usage(format!("{name} {c}: {e}")))?;
    }
    Ok(())
}

/// Options of `demo`.
#[derive(Clone, Debug, Args)]
pub struct DemoArgs {
    /// Private training steps.
    #[arg(long, default_value_t = 25)]
    pub steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Test digits to classify privately (at most 2,000).
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// Public seed of the initial weights and the batch order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Backend and output.
    #[command(flatten)]
    pub out: OutputArgs,
}

/// Backend and output options shared by the jobs and the demo.
#[derive(Clone, Debug, Args)]
pub struct OutputArgs {
    /// Where the shares live and the arithmetic runs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

impl OutputArgs {
    /// Progress bars on stderr, unless quiet or printing JSON.
    fn progress(&self) -> Progress {
        Progress::stderr(self.quiet || self.json)
    }
}

/// Options of `bench`.
#[derive(Clone, Debug, Args)]
#[command(after_help = "The paper's models (CryptGPU, Tan et al., IEEE S&P 2021):\n  \
    lenet      LeNet on MNIST                         (training batch 128)\n  \
    alexnet    AlexNet on CIFAR-10 (batch 128), Tiny ImageNet and ImageNet\n  \
    vgg16      VGG-16 on CIFAR-10 (batch 32), Tiny ImageNet (batch 8) and ImageNet\n  \
    resnet50   ResNet-50 on ImageNet\n  \
    resnet101  ResNet-101 on ImageNet\n  \
    resnet152  ResNet-152 on ImageNet\n\
    Inference runs at batch 1; training one iteration at the paper's batch size.\n\
    Large models take long on a CPU: pick them with --models.")]
pub struct BenchArgs {
    /// Models to run (comma separated): lenet, alexnet, vgg16, resnet50, resnet101, resnet152
    /// (also lenet-tanh, lenet-maxpool), or `all`.
    #[arg(long, value_delimiter = ',', default_value = "lenet")]
    pub models: Vec<String>,
    /// Only these dataset shapes (comma separated: mnist, cifar10, tiny-imagenet, imagenet).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub datasets: Vec<Shape>,
    /// Private inference at batch 1 (the default when neither mode is given).
    #[arg(long)]
    pub inference: bool,
    /// One private training iteration at the paper's batch size.
    #[arg(long)]
    pub training: bool,
    /// Training batch for models the paper gives none for (else they are skipped).
    #[arg(long)]
    pub train_batch: Option<usize>,
    /// Count bytes and rounds only: the protocols run on a device that computes nothing
    /// (they are data-oblivious, so the counts are exact); no times. Seconds for any model.
    #[arg(long)]
    pub dry_run: bool,
    /// Where the time goes: each party's thread timed per kind of work (matrix products,
    /// convolutions, pooling, PRG, bit packing, elementwise, layout, transfers, sending,
    /// waiting on peers, other), per layer and in total.
    #[arg(long)]
    pub profile: bool,
    /// A modelled network between the parties.
    #[command(flatten)]
    pub net: NetArgs,
    /// Where the shares live and the arithmetic runs.
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: BackendKind,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--rtt-ms` and `--gbps`: measure over a modelled network (`bench`, and `party`, where
/// all three parties must be given the same).
#[derive(Clone, Debug, Default, Args)]
pub struct NetArgs {
    /// Model a network between the parties: this round-trip time in milliseconds on every
    /// link (each message arrives half of it after it has left). With --gbps or alone.
    #[arg(long, value_name = "MS")]
    pub rtt_ms: Option<f64>,
    /// Model a network between the parties: this bandwidth in Gbit/s on each direction of
    /// every link (a message of n bytes takes n/bandwidth to leave). With --rtt-ms or alone.
    #[arg(long, value_name = "GBITS")]
    pub gbps: Option<f64>,
}

impl NetArgs {
    /// The network asked for: `None` when neither flag is given; one alone leaves the
    /// other unconstrained (0 ms, 10,000 Gbit/s).
    pub fn model(&self) -> Result<Option<triad_transport::NetModel>> {
        if self.rtt_ms.is_none() && self.gbps.is_none() {
            return Ok(None);
        }
        triad_transport::NetModel::new(self.rtt_ms.unwrap_or(0.0), self.gbps.unwrap_or(1e4))
            .map(Some)
            .map_err(|e| Error::Usage(format!("--rtt-ms/--gbps: {e}")))
    }
}

/// Options of `keygen`: `--party` (this machine's party, for three organisations),
/// `--assemble` (the parties file from the three certificates), or `--hosts` (all three
/// on one machine, for local runs and tests).
#[derive(Clone, Debug, Args)]
pub struct KeygenArgs {
    /// One machine (local runs and tests only): all three parties' host names or IP
    /// addresses, comma separated; makes a CA and all three keys here.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present_any = ["party", "assemble", "client"],
        conflicts_with_all = ["party", "assemble", "client"]
    )]
    pub hosts: Vec<String>,
    /// With --hosts: their ports, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "7000,7001,7002")]
    pub ports: Vec<u16>,
    /// This machine's party only (0, 1 or 2): writes its private key (never leaves this
    /// machine) and its self-signed certificate, and prints the fingerprint.
    #[arg(long, requires = "host", conflicts_with = "assemble")]
    pub party: Option<u8>,
    /// With --party: this machine's host name or IP address, as the others reach it.
    #[arg(long)]
    pub host: Option<String>,
    /// With --party: the port this party listens on (default 7000 + N).
    #[arg(long)]
    pub port: Option<u16>,
    /// With --hosts, for `triad serve`: clients to make keys for and enrol (comma
    /// separated names); each gets `<name>.pem`, `<name>.key` and a client file
    /// `<name>.toml`, and every party a `client_address`.
    #[arg(long, value_delimiter = ',', requires = "hosts")]
    pub clients: Vec<String>,
    /// With --clients: the ports the three servers accept clients on.
    #[arg(long, value_delimiter = ',', default_value = "7100,7101,7102")]
    pub client_ports: Vec<u16>,
    /// A client of `triad serve` (a model or data owner): writes its private key and
    /// certificate, and prints the lines the servers' operators add to enrol it.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["party", "assemble"])]
    pub client: Option<String>,
    /// With --client: the parties file, to write the client file `<NAME>.toml` (the
    /// servers' client addresses and certificate fingerprints).
    #[arg(long, value_name = "FILE", requires = "client")]
    pub servers: Option<PathBuf>,
    /// Build the parties file from the three parties' certificates (from `keygen
    /// --party`), pinning each by its fingerprint.
    #[arg(long, num_args = 3, value_names = ["CERT", "CERT", "CERT"])]
    pub assemble: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Session id written to the parties file (all three operators must use the same).
    #[arg(long, default_value = "triad")]
    pub session: String,
    /// Idle timeout written to the parties file: a peer silent this long is dead (also
    /// the setup timeout unless the file sets `setup_timeout_ms`).
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Overwrite an existing parties file (or, with --party, key).
    #[arg(long)]
    pub force: bool,
}

/// Options of `party`.
#[derive(Clone, Debug, Args)]
pub struct PartyArgs {
    /// This party's id: 0 (the model and data owner), 1 or 2.
    #[arg(long)]
    pub id: u8,
    /// The parties file (from `triad keygen`).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Override the file's timeout (setup and every receive).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Threads this party computes with (default: all cores, or a third of them when the parties file puts all three parties on this machine's loopback).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// A modelled network on the links this party sends on.
    #[command(flatten)]
    pub net: NetArgs,
    /// The job; all three parties must be given the same one.
    #[command(subcommand)]
    pub job: PartyJob,
}

impl PartyArgs {
    /// This party's session: the parties file (with `--timeout-ms`) and, with `--rtt-ms` or
    /// `--gbps`, the modelled network.
    pub fn session(&self) -> Result<crate::run::Session> {
        Ok(crate::run::Session::load(self.id, &self.config, self.timeout_ms)?.with_net(self.net.model()?))
    }
}

/// The job of a party process.
#[derive(Clone, Debug, Subcommand)]
pub enum PartyJob {
    /// Private training, then private inference on the test split.
    Train(JobArgs),
    /// Private inference.
    Infer(JobArgs),
}

/// The command line as typed, with the program shown as `triad`.
pub fn command_line() -> String {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(a) = args.first_mut() {
        *a = "triad".to_string();
    }
    args.iter()
        .map(|a| if a.is_empty() || a.contains(char::is_whitespace) { format!("{a:?}") } else { a.clone() })
        .collect::<Vec<_>>()
        .join(" ")
}

fn emit(r: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", to_json(r)?);
    } else {
        print!("{}", report::render(r));
    }
    Ok(())
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map_err(|e| Error::Usage(format!("cannot write JSON: {e}")))
}

/// The job options that mean nothing for inference, hidden from `infer --help` and
/// `party ... infer --help` (the two commands share [`JobArgs`] with training).
const TRAINING_ONLY: [&str; 11] = [
    "epochs",
    "steps",
    "lr",
    "momentum",
    "weight_decay",
    "eval_batch",
    "save_weights",
    "checkpoint",
    "checkpoint_every",
    "twin",
    "labels",
];

fn hide_training_flags(infer: clap::Command) -> clap::Command {
    TRAINING_ONLY.iter().fold(infer, |c, id| c.mut_arg(*id, |a| a.hide(true)))
}

/// The command line's parser: [`Cli`]'s, with the training-only options hidden from
/// both `infer` subcommands' help.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let hide_party_flags = |c: clap::Command| PARTY_ONLY.iter().fold(c, |c, id| c.mut_arg(*id, |a| a.hide(true)));
    Cli::command()
        .mut_subcommand("infer", |c| hide_party_flags(hide_training_flags(c)))
        .mut_subcommand("train", hide_party_flags)
        .mut_subcommand("party", |p| p.mut_subcommand("infer", hide_training_flags))
}

/// The job options that mean something only to a party of three processes.
const PARTY_ONLY: [&str; 2] = ["onnx_from_owner", "expect_graph"];

/// Parses the process's arguments with [`command`] (exits with clap's message on a bad
/// command line, as `Cli::parse` does).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let m = command().get_matches();
    Cli::from_arg_matches(&m).unwrap_or_else(|e| e.exit())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    let command = command_line();
    match cli.command {
        Command::Demo(a) => {
            let job = JobSpec {
                train: true,
                model: ModelName::Lenet,
                dataset: Shape::Mnist,
                random: false,
                data: None,
                batch: a.batch,
                epochs: a.steps.div_ceil((8000 / a.batch.max(1)).max(1)).max(1),
                steps: Some(a.steps),
                lr: a.lr,
                momentum: a.momentum,
                weight_decay: 0.0,
                frac_bits: 20,
                guard: false,
                seed: a.seed,
                samples: Some(a.samples),
                eval_batch: 250,
                weights: None,
                force_weights: false,
                save_weights: None,
                checkpoint: None,
                checkpoint_every: None,
                resume: None,
                twin: true,
            };
            if !a.out.json {
                println!(
                    "{}",
                    report::header(
                        &command,
                        &format!(
                            "demo: three parties on this machine train LeNet privately on secret-shared MNIST digits \
                             ({} steps of batch {}), then classify {} test digits privately",
                            a.steps, a.batch, a.samples
                        )
                    )
                );
            }
            let r = run_local(&command, &job, a.out.backend, a.out.progress())?;
            emit(&r, a.out.json)
        }
        Command::Train(a) | Command::Infer(a) if a.onnx_from_owner => Err(Error::Usage(
            "--onnx-from-owner: only parties 1 and 2 of `triad party` take the model from the owner".into(),
        )),
        Command::Train(a) if a.onnx.is_some() => onnx_cli::train(&a),
        Command::Train(a) => job_local(&command, &a, true),
        Command::Infer(a) if a.onnx.is_some() => onnx_cli::infer(&command, &a),
        Command::Infer(a) => job_local(&command, &a, false),
        Command::Inspect(a) => onnx_cli::inspect(&a),
        Command::Party(pa) => {
            crate::run::set_thread_budget(pa.threads, &pa.config)?;
            let (a, train) = match &pa.job {
                PartyJob::Train(a) => (a, true),
                PartyJob::Infer(a) => (a, false),
            };
            // The party's protocol runs on the CPU device's pool (one thread when the three
            // parties share this machine's cores), so its parallel loops start there.
            if a.onnx.is_some() || a.onnx_from_owner {
                return triad_ring::CpuDevice::in_pool(|| onnx_cli::party(&pa, a, train));
            }
            let job = a.spec(train)?;
            if !a.out.json {
                println!("{}", report::header(&command, &format!("party {}: {}", pa.id, what(&job))));
            }
            let session = pa.session()?;
            let r = triad_ring::CpuDevice::in_pool(|| {
                run_party_process(&command, &job, a.out.backend, session, a.out.progress())
            })?;
            emit(&r, a.out.json)
        }
        Command::Keygen(k) => crate::keygen::run(&k),
        Command::Serve(a) => crate::serve::run(&a),
        Command::Client(a) => crate::client::run(&a),
        Command::Bench(b) => run_bench(&command, &b),
    }
}

fn what(job: &JobSpec) -> String {
    format!(
        "private {} of {} on {}{}",
        if job.train { "training" } else { "inference" },
        job.model.as_str(),
        job.dataset.as_str(),
        if job.random { " (random inputs)" } else { "" }
    )
}

fn job_local(command: &str, a: &JobArgs, train: bool) -> Result<()> {
    let job = a.spec(train)?;
    if !a.out.json {
        println!("{}", report::header(command, &format!("{}, three parties in this process", what(&job))));
    }
    let r = run_local(command, &job, a.out.backend, a.out.progress())?;
    emit(&r, a.out.json)
}

fn run_bench(command: &str, b: &BenchArgs) -> Result<()> {
    let mut wanted: Vec<ModelName> = Vec::new();
    for m in &b.models {
        if m == "all" {
            wanted.extend(PAPER_MODELS.iter().map(|(m, _)| *m));
            continue;
        }
        let name = ModelName::from_str(m, true).map_err(|_| {
            Error::Usage(format!(
                "--models: unknown model {m:?} (lenet, lenet-tanh, lenet-maxpool, alexnet, vgg16, resnet50, resnet101, resnet152, all)"
            ))
        })?;
        wanted.push(name);
    }
    let mut list: Vec<(ModelName, Shape)> = Vec::new();
    for m in wanted {
        let shapes: Vec<Shape> =
            match PAPER_MODELS.iter().filter(|(pm, _)| *pm == m).map(|(_, d)| *d).collect::<Vec<_>>() {
                v if v.is_empty() => vec![m.default_dataset()],
                v => v,
            };
        for d in shapes {
            if (b.datasets.is_empty() || b.datasets.contains(&d)) && !list.contains(&(m, d)) {
                list.push((m, d));
            }
        }
    }
    let inference = b.inference || !b.training;
    let opt = bench::BenchOptions { backend: b.backend, dry_run: b.dry_run, profile: b.profile, net: b.net.model()? };
    if opt.net.is_some() && b.dry_run {
        return Err(Error::Usage("--rtt-ms/--gbps time a modelled network, which --dry-run does not run".into()));
    }
    if !b.json {
        println!("{}", report::header(command, "bench: the paper's models, three parties in this process"));
    }
    let mut results = Vec::new();
    for (m, d) in list {
        if inference {
            let r = bench::bench(m, d, false, 1, &opt)?;
            if !b.json {
                println!("{}", bench::render(&r));
            }
            results.push(r);
        }
        if b.training {
            let batch = paper_train_batch(m, d).or(b.train_batch);
            match batch {
                Some(n) => {
                    let r = bench::bench(m, d, true, n, &opt)?;
                    if !b.json {
                        println!("{}", bench::render(&r));
                    }
                    results.push(r);
                }
                None if !b.json => println!(
                    "{} on {}: the paper times no training; pass --train-batch N to run it\n",
                    m.as_str(),
                    d.as_str()
                ),
                None => {}
            }
        }
    }
    if b.json {
        println!("{}", to_json(&results)?);
    }
    Ok(())
}
