//go:build libsqlite3

package main

// buildTags makes the binary under test link the same SQLite as the test.
const buildTags = "libsqlite3"
