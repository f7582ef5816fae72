// Command beamhub-kube-scheduler is kube-scheduler with BeamHub's BeamHubLoad plugin compiled in.
//
// The upstream command line, flags and KubeSchedulerConfiguration are unchanged; a profile
// that enables the BeamHubLoad plugin asks the BeamHub extender for its filter and scores
// in-process, cached per pod shape for a second (see package loadaware), instead of two HTTP
// round trips to the extender for every pod.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"

	"beamhub.local/deploy/cluster/loadaware"
)

func main() {
	command := app.NewSchedulerCommand(app.WithPlugin(loadaware.Name, loadaware.New))
	os.Exit(cli.Run(command))
}
