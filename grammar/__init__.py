"""The grammar of the `.route` language, shipped as package data (`route.lark`)."""
