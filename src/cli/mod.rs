//! The command line: argument parsing and one function per subcommand.
//!
//! This is the only layer that uses `anyhow`; everything below returns typed errors. It owns
//! exit codes (0 ok, 1 threshold failed, 2 usage/plan/I-O error, 130/143/129 stopped by
//! SIGINT/SIGTERM/SIGHUP) and what is printed to the terminal, not how anything is computed.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod check;
mod display;
mod docs;
mod interactive;
mod limits;
mod live;
mod merge;
mod monitor;
mod presets;
mod probe;
mod report;
mod run;
mod run_flags;
mod run_output;
mod schema;
mod search;
mod serve;
mod shard_flags;
mod signals;

/// How a command ended; the process exit code is derived from it and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Completed, and every threshold held.
    Success = 0,
    /// A threshold failed, or a comparison found a regression.
    ThresholdFailed = 1,
    /// Usage, plan or I/O error.
    Error = 2,
    /// Stopped by SIGHUP; partial results were written.
    HungUp = 129,
    /// Interrupted by Ctrl-C (SIGINT); partial results were written.
    Interrupted = 130,
    /// Stopped by SIGTERM; partial results were written.
    Terminated = 143,
}

#[derive(Debug, Parser)]
#[command(
    name = "chatload",
    version,
    about = "Load testing for TCP chat servers",
    after_help = "Exit codes: 0 ok, 1 a threshold failed, 2 usage/plan/I-O error (including results that could not be written where asked), 130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (partial results written)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a test plan and write its results.
    Run(RunArgs),
    /// Validate plans without sending any load.
    Check(CheckArgs),
    /// Print the JSON Schema of plans or results.
    Schema(SchemaArgs),
    /// Re-render HTML/CSV reports from a saved result.json.
    Report(ReportArgs),
    /// Compare two results and fail on a regression.
    Compare(CompareArgs),
    /// Merge the results of the shards of one run (`run --shard I/N`) into one result and
    /// judge `ensure` on it.
    Merge(MergeArgs),
    /// Run the reference chat server.
    Serve(ServeArgs),
    /// Check connectivity to a server: send a few messages and show the replies.
    Probe(ProbeArgs),
    /// Sample a server process and the host.
    Monitor(MonitorArgs),
    /// List the built-in load presets.
    Presets,
    /// Print a shell completion script, e.g. `chatload completions bash > /etc/bash_completion.d/chatload`.
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `chatload man > chatload.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (.yml, .yaml or .toml).
    pub plan: PathBuf,
    /// Override `config.target` (HOST:PORT or `embedded`).
    #[arg(long)]
    pub target: Option<String>,
    /// Apply `config.environments.NAME` on top of the plan.
    #[arg(short = 'e', long = "environment")]
    pub environment: Option<String>,
    /// Set a plan variable: NAME=VALUE (repeatable); VALUE is read as YAML (`5` a number,
    /// `[a, b]` a list: one pick per vuser).
    #[arg(short = 'v', long = "variable", value_name = "NAME=VALUE")]
    pub variables: Vec<String>,
    /// Output directory for this run (default: `reports/<plan>-<UTC timestamp>/`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Let `--out DIR` name a folder that already holds files (this run's reports replace
    /// theirs); without it such a folder is an error.
    #[arg(long, requires = "out")]
    pub overwrite: bool,
    /// Report formats to write (default: the plan's `config.report.formats`).
    #[arg(long, value_delimiter = ',')]
    pub format: Vec<ReportFormat>,
    /// Write no report files.
    #[arg(long)]
    pub no_report: bool,
    /// No live progress, only the final summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not run the plan's local commands (`config.hooks`).
    #[arg(long)]
    pub no_hooks: bool,
    /// Seed of every random choice (Poisson arrivals, scenario and data picks, think times,
    /// template functions): the same seed replays them for the same plan. Default: a random
    /// seed, printed at the start and stored in result.json as `run.seed`.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Replace the plan's phases with a preset (`chatload presets` lists them).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Preset parameter: the first (or base) number of vusers.
    #[arg(long, value_name = "N", requires = "preset")]
    pub from: Option<u64>,
    /// Preset parameter: the last (or peak) number of vusers.
    #[arg(long, value_name = "N", requires = "preset")]
    pub to: Option<u64>,
    /// Preset parameter: how many vusers each step adds (or the factor, for `exponential`).
    #[arg(long, value_name = "N", requires = "preset")]
    pub by: Option<u64>,
    /// Preset parameter: how long each step (or hold) lasts, e.g. `30s`.
    #[arg(long, value_name = "DURATION", requires = "preset")]
    pub every: Option<String>,
    #[command(flatten)]
    pub shape: ShapeArgs,
    #[command(flatten)]
    pub shards: ShardArgs,
    /// Read commands (scale N, stats, export FILE, broadcast TEXT, stop, help) from stdin.
    #[arg(long)]
    pub interactive: bool,
    #[command(flatten)]
    pub live: live::LiveArgs,
}

/// The one-liner load shape (`--vusers N --spawn-rate R --duration D`, Locust's `-u -r -t`,
/// or `--arrival-rate R --duration D`); checked for conflicts in `run::shape`.
#[derive(Debug, Default, Args)]
pub struct ShapeArgs {
    /// Closed model instead of the plan's phases: keep N vusers connected (needs --duration).
    #[arg(long, short = 'u', value_name = "N")]
    pub vusers: Option<u64>,
    /// With --vusers: start R vusers per second until N are running (default: all at once).
    #[arg(long, short = 'r', value_name = "R")]
    pub spawn_rate: Option<f64>,
    /// Open model instead of the plan's phases: R new vusers per second (needs --duration).
    #[arg(long, value_name = "R")]
    pub arrival_rate: Option<f64>,
    /// How long the run lasts, counted from its start, e.g. `60s`, `5m` (with --vusers or
    /// --arrival-rate); with --preset it sets the preset's `duration`.
    #[arg(long, short = 't', value_name = "DURATION")]
    pub duration: Option<String>,
}

/// Scale-out: this process runs one shard of a run split over several (docs/distributed.md).
#[derive(Debug, Default, Args)]
pub struct ShardArgs {
    /// Run shard I of N (0-based), e.g. `--shard 0/3`: every N-th arrival of the seeded
    /// schedule and an exact share of each closed-model level. All shards need the same plan,
    /// seed and run id.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Split the run into N shards and take the index from `JOB_COMPLETION_INDEX` (set by a
    /// Kubernetes Indexed Job).
    #[arg(long, value_name = "N")]
    pub shards: Option<u64>,
    /// The id tying the shards of one run together (`chatload merge` checks it). Default for a
    /// split run: derived from the plan hash and the seed; for a single run: random.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Start the phases at this wall-clock instant, after the setup (hooks, `before` flow):
    /// RFC 3339 (`2026-12-02T10:00:00Z`) or an offset from now (`+30s`). How late the phases
    /// actually started is recorded in result.json.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Json,
    Csv,
    Html,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Plan files to validate.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// How problems are printed: `text` for people, `json` for tools, `github` for Actions
    /// annotations.
    #[arg(long, value_enum, default_value_t = CheckFormat::Text)]
    pub format: CheckFormat,
    /// Judge the capacity warnings (descriptors, ports) for one of N shards (`run --shard
    /// I/N` or `--shards N`): each process holds its share of the load, the largest being
    /// shard 0's.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub shards: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
    Github,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which schema: `plan` (test plans) or `result` (result.json).
    #[arg(value_enum, default_value_t = SchemaKind::Plan)]
    pub kind: SchemaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    Plan,
    Result,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A result.json written by `chatload run`.
    pub result: PathBuf,
    /// Write the HTML report to this file.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write stats.csv and history.csv into this directory.
    #[arg(long)]
    pub csv: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference result.json (e.g. the last good run).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// The result.json to judge against BASE.
    #[arg(value_name = "NEW")]
    pub new: PathBuf,
    /// Largest accepted regression per metric, e.g. `10%`.
    #[arg(long, default_value = "10%")]
    pub max_regression: String,
    /// Noise floor for timings: a latency that moved by less than this is not a regression,
    /// whatever the percentage (0.39 → 0.47 ms is +20 % but noise).
    #[arg(long, default_value = "1ms", value_name = "DURATION")]
    pub min_delta: String,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The result.json of every shard (any order).
    #[arg(value_name = "RESULT", required = true)]
    pub results: Vec<PathBuf>,
    /// Where to write the merged result.json and reports.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Merge what is there when shards are missing; the result is marked partial.
    #[arg(long)]
    pub allow_partial: bool,
    /// The plan whose `ensure` is judged (default: the plan recorded in the results).
    #[arg(long, value_name = "PLAN")]
    pub plan: Option<PathBuf>,
    /// Report formats to write (default: json, csv and html).
    #[arg(long, value_delimiter = ',')]
    pub format: Vec<ReportFormat>,
    /// Only the summary, no per-file lines.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9200")]
    pub listen: String,
    /// Share the port with other servers started with --reuse-port (SO_REUSEPORT): the
    /// kernel spreads connections over them, past one process's descriptor limit.
    #[arg(long)]
    pub reuse_port: bool,
    /// Wire format: `text` (one command per line) or `binary` (length-prefixed packets).
    #[arg(long, default_value = "text")]
    pub framing: String,
    /// XOR key for the body of binary packets.
    #[arg(long)]
    pub xor: Option<String>,
    /// Delay added before every reply, e.g. `50ms`.
    #[arg(long)]
    pub delay: Option<String>,
    /// Random extra delay up to this much, e.g. `10ms`.
    #[arg(long)]
    pub jitter: Option<String>,
    /// Commands processed per second over the whole server, e.g. `2000/s`.
    #[arg(long)]
    pub capacity: Option<String>,
    /// Freeze the whole server for this long ...
    #[arg(long, requires = "every")]
    pub stall: Option<String>,
    /// ... this often.
    #[arg(long, requires = "stall")]
    pub every: Option<String>,
    /// Refuse clients beyond this many.
    #[arg(long)]
    pub max_clients: Option<usize>,
    /// Serve TLS with this certificate chain (PEM, leaf first); give --tls-key too.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a certificate generated at start for localhost, 127.0.0.1 and ::1;
    /// its PEM is written to a file that clients use as their CA file.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
    pub tls_self_signed: bool,
    /// Where --tls-self-signed writes the certificate PEM (default: the temp directory).
    #[arg(long, value_name = "PATH", requires = "tls_self_signed")]
    pub tls_cert_out: Option<PathBuf>,
    /// Mutual TLS: clients must present a certificate issued by this CA (PEM).
    #[arg(long, value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,
    /// Speak WebSocket (wss with TLS): one message is one command, on any path.
    #[arg(long)]
    pub websocket: bool,
    /// Testing knob: refuse every WebSocket upgrade with this HTTP status (400-599).
    #[arg(long, value_name = "STATUS", hide = true)]
    pub ws_refuse: Option<u16>,
    /// Serve the HTTP demo JSON API instead of chat (HTTP/1.1 and HTTP/2; https with TLS).
    #[arg(long, conflicts_with_all = ["websocket", "xor"])]
    pub http: bool,
    /// Serve the server's own counters (connections, commands, messages and bytes sent,
    /// clients) on http://ADDR/metrics in the Prometheus text format: a port (binds
    /// 127.0.0.1) or HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// HOST:PORT of the server.
    pub address: String,
    /// Use this plan's protocol and one of its messages.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// The plan message to send (default: the first one).
    #[arg(long)]
    pub message: Option<String>,
    /// How many test messages to send.
    #[arg(long, default_value_t = 5)]
    pub count: u32,
    /// How long to wait for the connection and for each reply.
    #[arg(long, default_value = "3s")]
    pub timeout: String,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The process id of the server to sample.
    #[arg(long, conflicts_with = "process", required_unless_present = "process")]
    pub pid: Option<u32>,
    /// Sample every process with this name (summed), e.g. `chat-server`.
    #[arg(long)]
    pub process: Option<String>,
    /// Count established TCP connections on this local port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Time between samples, e.g. `500ms`.
    #[arg(long, default_value = "1s")]
    pub interval: String,
    /// Stop after this long (default: until Ctrl-C).
    #[arg(long)]
    pub duration: Option<String>,
    /// Write samples to FILE.json or FILE.csv.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Parses the process arguments, runs the command and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(exit) => exit as i32,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            Exit::Error as i32
        }
    }
}

/// The error and its causes joined by `: `, each said once: many errors already embed their
/// source in their own message (`cannot read X: No such file…`) and also expose it as the
/// source, which `{:#}` would print a second time.
pub fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let said = cause.to_string();
        if said.is_empty() || text.contains(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}

/// Runs one command. Public so tests can drive the CLI layer in-process.
pub fn dispatch(command: Command) -> anyhow::Result<Exit> {
    match command {
        Command::Run(args) => run::execute(args),
        Command::Check(args) => check::execute(args),
        Command::Schema(args) => schema::execute(args),
        Command::Report(args) => report::execute_report(args),
        Command::Compare(args) => report::execute_compare(args),
        Command::Merge(args) => merge::execute(args),
        Command::Serve(args) => serve::execute(args),
        Command::Probe(args) => probe::execute(args),
        Command::Monitor(args) => monitor::execute(args),
        Command::Presets => presets::execute(),
        Command::Completions(args) => docs::completions(args.shell),
        Command::Man => docs::man(),
    }
}

/// A duration given on the command line (`500ms`, `3s`, `5m`, `1h` or bare seconds), parsed
/// exactly as durations in plans are.
fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    Ok(crate::plan::parse_duration(text)?)
}
