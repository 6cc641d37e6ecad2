"""The compiler: semantic passes over the AST and dispatch tables (see issue: compiler)."""
