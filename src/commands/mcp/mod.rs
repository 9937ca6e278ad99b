//! `handoff mcp`: handoff as an MCP server over stdio (the official Rust SDK, `rmcp`). The tools run the
//! CLI's own code paths (send, the inbox shared with `sync`, fetch) and answer with structured results;
//! a failure is a tool error carrying the CLI's text and exit code. With `--channel` the server also
//! declares Claude Code's `claude/channel` capability and pushes new messages live ([`channel`]).
//!
//! stdout is the MCP transport: nothing here prints to it.

pub mod channel;
mod tools;

use crate::cli::McpArgs;
use crate::config::{Overrides, Settings};
use crate::exit;
use rmcp::ServiceExt;
use rmcp::model::{CallToolResult, Content};

/// The experimental capability Claude Code reads to accept pushed messages.
pub const CHANNEL_CAPABILITY: &str = "claude/channel";
/// The notification that carries one pushed message.
pub const CHANNEL_NOTIFICATION: &str = "notifications/claude/channel";

/// The MCP server: settings are resolved again for every tool call (as every CLI run resolves them).
#[derive(Clone)]
pub struct HandoffMcp {
    overrides: Overrides,
    channel: bool,
    tool_router: rmcp::handler::server::router::tool::ToolRouter<Self>,
}

impl HandoffMcp {
    /// A server for these command-line overrides; `channel` declares `claude/channel`.
    pub fn new(overrides: Overrides, channel: bool) -> Self {
        Self { overrides, channel, tool_router: Self::tool_router() }
    }

    fn settings(&self) -> anyhow::Result<Settings> {
        Settings::load(&self.overrides)
    }
}

/// A tool error with the CLI's text (`handoff: ...`) and exit code, also as structured content.
pub fn tool_error(e: &anyhow::Error) -> CallToolResult {
    let code = exit::code_of(e);
    let text = format!("handoff: {e:#}");
    let mut r = CallToolResult::structured_error(
        serde_json::json!({ "ok": false, "exit_code": code, "error": format!("{e:#}") }),
    );
    r.content = vec![Content::text(text)];
    r
}

/// A result with `text` for the agent to read and `value` as structured content; an error when `error`.
pub fn tool_result(text: String, value: serde_json::Value, error: bool) -> CallToolResult {
    let mut r = if error { CallToolResult::structured_error(value) } else { CallToolResult::structured(value) };
    r.content = vec![Content::text(text)];
    r
}

/// Runs a command's future on a blocking-pool thread of the current runtime. The CLI's code paths hold
/// the local state's SQLite connection (not `Sync`) across awaits, so their futures are not `Send`; the
/// MCP service and background tasks need `Send` ones. This bridges the two without duplicating the code.
pub async fn on_blocking<F, Fut, T>(f: F) -> anyhow::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(f()))
        .await
        .map_err(|e| anyhow::anyhow!("internal task failed: {e}"))?
}

/// Runs `handoff mcp` until the client closes stdin.
pub async fn run(overrides: Overrides, a: McpArgs) -> anyhow::Result<i32> {
    // a broken config is reported at once on stderr (the client's log), not at the first tool call
    let machine = Settings::load(&overrides)?.machine;
    let server = HandoffMcp::new(overrides.clone(), a.channel);
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow::anyhow!("the MCP client did not complete the handshake: {e}"))?;
    let pusher = a.channel.then(|| {
        let peer = service.peer().clone();
        tokio::spawn(channel::push_loop(overrides, machine, peer))
    });
    let quit = service.waiting().await;
    if let Some(p) = pusher {
        p.abort();
    }
    quit.map_err(|e| anyhow::anyhow!("the MCP session ended with an error: {e}"))?;
    Ok(exit::OK)
}
