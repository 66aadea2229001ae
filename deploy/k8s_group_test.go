package deploy

import (
	"testing"
	"time"
)

// TestK8sWorkersGroupMembership checks that every worker pod joins its
// consumer group as a static member under its stable pod name, with an
// explicit session timeout: a restarted pod then gets its partitions back
// without a rebalance if it returns within the timeout, and a pod that is
// gone for good releases them after it (issue 13; the reliability suite in
// bench/reliability measures restarts against it).
func TestK8sWorkersGroupMembership(t *testing.T) {
	for _, o := range k8sObjects(t) {
		if o.kind() != "StatefulSet" && o.kind() != "Deployment" {
			continue
		}
		containers := list(get(o.doc, "spec", "template", "spec", "containers"))
		if len(containers) != 1 {
			continue // TestK8sProcessors reports it
		}
		if args := strList(get(containers[0], "args")); len(args) > 1 && args[1] == "gateway" {
			continue // in no group: every gateway reads every state partition
		}
		env := map[string]string{}
		for _, e := range list(get(containers[0], "env")) {
			env[str(get(e, "name"))] = str(get(e, "value"))
		}
		if got := env["PCISTREAM_INSTANCE_ID"]; got != "$(POD_NAME)" {
			t.Errorf("%s: PCISTREAM_INSTANCE_ID %q, want $(POD_NAME) (stable per pod, unique among live pods)", o.name(), got)
		}
		d, err := time.ParseDuration(env["PCISTREAM_SESSION_TIMEOUT"])
		if err != nil {
			t.Errorf("%s: PCISTREAM_SESSION_TIMEOUT %q: %v", o.name(), env["PCISTREAM_SESSION_TIMEOUT"], err)
			continue
		}
		// Kafka's default group.min.session.timeout.ms is 6 s; above a
		// minute a crashed pod's partitions wait too long for a new owner.
		if d < 6*time.Second || d > time.Minute {
			t.Errorf("%s: PCISTREAM_SESSION_TIMEOUT %s, want between 6s and 1m", o.name(), d)
		}
	}
}
