"""The language server of `.route` files (`interlock lsp`)."""
