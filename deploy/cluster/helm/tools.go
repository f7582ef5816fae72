//go:build tools

// Package helm names the command build.sh compiles.
package helm

import _ "helm.sh/helm/v3/cmd/helm"
