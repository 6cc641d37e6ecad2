// The interlock extension: `.route` files get their language (highlighting by
// syntaxes/route.tmLanguage.json, comments and brackets by language-configuration.json),
// and the language server, `interlock lsp` over stdio, for diagnostics and the rest.
// No build step: this file runs as it is. The client library comes from `npm install`
// in this folder; without it the extension still highlights, and says what is missing.
"use strict";

const vscode = require("vscode");

let client;

function serverCommand() {
  const config = vscode.workspace.getConfiguration("interlock");
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? "";
  const expand = (text) => text.replace(/\$\{workspaceFolder\}/g, folder);
  return {
    command: expand(config.get("server.command", "interlock")),
    args: config.get("server.args", ["lsp"]).map(expand),
  };
}

async function activate(context) {
  let languageclient;
  try {
    languageclient = require("vscode-languageclient/node");
  } catch (err) {
    vscode.window.showWarningMessage(
      "interlock: highlighting only. For diagnostics, run `npm install` in the extension's folder " +
        `(${context.extensionPath}): vscode-languageclient is missing.`
    );
    return;
  }
  const { command, args } = serverCommand();
  const serverOptions = { command, args, transport: languageclient.TransportKind.stdio };
  const clientOptions = {
    documentSelector: [{ scheme: "file", language: "route" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.route") },
  };
  client = new languageclient.LanguageClient("interlock", "interlock", serverOptions, clientOptions);
  try {
    await client.start();
  } catch (err) {
    vscode.window.showErrorMessage(
      `interlock: could not start the language server \`${command} ${args.join(" ")}\`: ${err.message}. ` +
        "Set `interlock.server.command` to the interlock of your project's virtualenv."
    );
  }
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
