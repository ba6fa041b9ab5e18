package e2e

import (
	"path/filepath"
	"testing"

	kubeadmv1beta4 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/internal/cluster"
)

// TestKubeadmPatchDecodes decodes the rendered kubeadm patch strictly into
// kubeadm's own v1beta4 ClusterConfiguration (the main module mirrors the
// few fields it sets, so this is where the mirror is held to the real type).
func TestKubeadmPatchDecodes(t *testing.T) {
	for _, name := range []string{"seed", "seed-email"} {
		t.Run(name, func(t *testing.T) {
			c, err := cluster.Load(filepath.Join("..", "..", "internal", "cluster", "testdata", name, "cluster.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			files, err := c.Render()
			if err != nil {
				t.Fatal(err)
			}
			var patch []byte
			for _, f := range files {
				if f.Name == cluster.FileKubeadmPatch {
					patch = f.Data
				}
			}
			var cc kubeadmv1beta4.ClusterConfiguration
			if err := yaml.UnmarshalStrict(patch, &cc); err != nil {
				t.Fatalf("strict decode into kubeadm v1beta4: %v\n%s", err, patch)
			}
			if cc.APIVersion != kubeadmv1beta4.SchemeGroupVersion.String() || cc.Kind != "ClusterConfiguration" {
				t.Errorf("type %s %s", cc.APIVersion, cc.Kind)
			}
			want := c.AuditFlags()
			if c.Authentication == cluster.ModeFlags {
				want = append(c.LegacyOIDCFlags(c.Issuer.CAFile != "" || c.Issuer.CAData != ""), want...)
			} else {
				want = append(c.StructuredAuthFlags(), want...)
			}
			args := cc.APIServer.ExtraArgs
			if len(args) != len(want) {
				t.Fatalf("%d extraArgs, want %d", len(args), len(want))
			}
			for i, a := range args {
				if a.Name != want[i].Name || a.Value != want[i].Value {
					t.Errorf("extraArgs[%d] = %s=%s, want %s", i, a.Name, a.Value, want[i])
				}
			}
			mounted := false
			for _, v := range cc.APIServer.ExtraVolumes {
				if v.HostPath == c.NodeDir && v.MountPath == c.NodeDir && v.ReadOnly {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("nodeDir %s is not mounted read-only: %+v", c.NodeDir, cc.APIServer.ExtraVolumes)
			}
		})
	}
}
