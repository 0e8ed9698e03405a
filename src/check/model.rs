//! What the parsers found: facts about how each container is started and stopped, every
//! value with the file, line and column it came from. Parsers only collect; the rules
//! (`lint`) read the facts of all files together, so that a task definition's command
//! meets the Dockerfile's ENTRYPOINT and a service meets its target group.

use std::path::PathBuf;
use std::time::Duration;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

/// Index into [`Facts::files`].
pub type FileId = usize;

/// A place in one of the files being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub file: FileId,
    pub span: Span,
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> Spanned<T> {
    pub fn new(value: T, loc: Loc) -> Self {
        Spanned { value, loc }
    }
}

/// One file that was read.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// As the user named it (shown in findings).
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    /// The text of a 1-based line, for showing under a finding.
    pub fn line(&self, n: usize) -> Option<&str> {
        self.text.lines().nth(n.checked_sub(1)?)
    }
}

/// A command line: `ENTRYPOINT`, `CMD`, `command:`, `entryPoint`. A shell-form Dockerfile
/// instruction is stored as the shell's own argv (`/bin/sh -c "…"`), with `shell_form`
/// set so messages can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv {
    pub words: Vec<Spanned<String>>,
    pub shell_form: bool,
    /// Where the whole instruction or key is (findings about the command point here).
    pub loc: Loc,
    /// What the user calls it: `ENTRYPOINT`, `CMD`, `command`, `entryPoint`, `args`.
    pub what: &'static str,
}

/// Environment variables, later entries overriding earlier ones.
pub type Env = Vec<(String, Spanned<String>)>;

pub fn env_get<'a>(env: &'a Env, name: &str) -> Option<&'a Spanned<String>> {
    env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// The final stage of a Dockerfile, with what it inherits from earlier stages.
#[derive(Debug, Clone)]
pub struct Image {
    pub file: FileId,
    /// The build context (the Dockerfile's directory).
    pub context: PathBuf,
    /// The image the final stage is built on (after following stage names).
    pub base: String,
    pub entrypoint: Option<Argv>,
    pub cmd: Option<Argv>,
    pub stop_signal: Option<Spanned<String>>,
    pub env: Env,
    /// Scripts copied from the build context, by their path inside the image.
    pub scripts: Vec<(String, FileId)>,
    /// App config files found in the build context, by their path relative to it.
    pub configs: Vec<(String, FileId)>,
}

/// Which orchestrator stops the container, which decides the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// ECS; `fargate` when the task is meant for Fargate.
    Ecs {
        fargate: bool,
    },
    Kubernetes,
    Compose,
}

impl Platform {
    /// Grace period between the stop signal and SIGKILL when nothing is set.
    pub fn default_stop_timeout(self) -> Duration {
        match self {
            Platform::Compose => Duration::from_secs(10),
            Platform::Ecs { .. } | Platform::Kubernetes => Duration::from_secs(30),
        }
    }

    /// The name of the grace-period setting, for messages.
    pub fn stop_timeout_name(self) -> &'static str {
        match self {
            Platform::Ecs { .. } => "stopTimeout",
            Platform::Kubernetes => "terminationGracePeriodSeconds",
            Platform::Compose => "stop_grace_period",
        }
    }
}

/// One container of a task definition, pod template or compose service.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub loc: Loc,
    pub image: Option<Spanned<String>>,
    /// Overrides the image's ENTRYPOINT (and drops its CMD unless `command` is set too).
    pub entrypoint: Option<Argv>,
    /// Overrides the image's CMD.
    pub command: Option<Argv>,
    pub env: Env,
    /// An init the platform puts in front (`initProcessEnabled`, compose `init: true`).
    pub platform_init: Option<Loc>,
    pub stop_signal: Option<Spanned<String>>,
    /// Per-container grace period (ECS `stopTimeout`, compose `stop_grace_period`).
    pub stop_timeout: Option<Spanned<Duration>>,
    /// Kubernetes `preStop` that only waits (`sleep N` or `sleep.seconds`).
    pub pre_stop_sleep: Option<Spanned<Duration>>,
    /// Compose `build:` context, which names the Dockerfile.
    pub build: Option<PathBuf>,
}

/// A task definition, pod (template) or compose file.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub platform: Platform,
    /// Family, CloudFormation logical id, workload name or compose project file.
    pub name: String,
    /// The ids other resources use to refer to it (CloudFormation logical id).
    pub refs: Vec<String>,
    pub loc: Loc,
    pub containers: Vec<Container>,
    /// Pod-wide grace period (`terminationGracePeriodSeconds`).
    pub grace: Option<Spanned<Duration>>,
}

/// An ECS service (from CloudFormation).
#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub loc: Loc,
    /// Logical id of its task definition.
    pub task: Option<String>,
    /// Where FARGATE_SPOT appears in its capacity provider strategy.
    pub spot: Option<Loc>,
    pub target_groups: Vec<String>,
}

/// An ALB/NLB target group (from CloudFormation).
#[derive(Debug, Clone)]
pub struct TargetGroup {
    pub name: String,
    pub loc: Loc,
    pub deregistration_delay: Option<Spanned<u64>>,
    pub interval: Option<Spanned<u64>>,
    pub unhealthy_threshold: Option<Spanned<u64>>,
}

impl TargetGroup {
    pub const DEFAULT_DELAY: u64 = 300;
    pub const DEFAULT_INTERVAL: u64 = 30;
    pub const DEFAULT_UNHEALTHY: u64 = 2;
}

/// Everything found in the files being checked.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub files: Vec<SourceFile>,
    pub images: Vec<Image>,
    pub deployments: Vec<Deployment>,
    pub services: Vec<Service>,
    pub target_groups: Vec<TargetGroup>,
}

impl Facts {
    pub fn add_file(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile { path, text });
        self.files.len() - 1
    }
}

/// A file that could not be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub span: Option<Span>,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.span {
            Some(s) => write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                s.line,
                s.col,
                self.message
            ),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}
