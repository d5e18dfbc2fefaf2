//go:build !libsqlite3

package main

const buildTags = ""
