//go:build tools

// Package tools pins the Pulumi main packages this wrapper module builds,
// so `go mod tidy` keeps their dependencies in go.sum.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
