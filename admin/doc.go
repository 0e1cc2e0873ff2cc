// Package admin is trustgate's admin REST API (/api/v1, with an OpenAPI 3.1 document). Its JSON
// documents are the Go SDK's types (package sdk), whose Client the `trustgate admin` command
// uses. Everything an administrator does — hosts, MCP server import and sync, tools, humans and
// their ceilings, agents and the kill switch, API tokens — goes through the store, whose
// changes become relationship tuples in SpiceDB.
package admin
