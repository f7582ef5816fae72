//go:build tools

// Package kwok names the command build.sh compiles.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
