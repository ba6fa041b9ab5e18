package cli

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
)

func whoamiFlags(f *pflag.FlagSet) (u *usecase.Whoami, kubeconfig, kctx *string) {
	u, kubeconfig, kctx = &usecase.Whoami{}, new(string), new(string)
	f.StringVar(kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: kubectl's)")
	f.StringVar(kctx, "context", "", "The kubeconfig context to use")
	f.BoolVar(&u.CanI, "can-i", false, "Also list what this identity may do (SelfSubjectRulesReview)")
	f.StringVarP(&u.Namespace, "namespace", "n", "default", "Namespace for --can-i")
	f.StringVar(&u.Kubectl, "kubectl", "kubectl", "The kubectl command")
	addLogFlags(f)
	return
}

func whoami(ctx context.Context, args []string, env Env) error {
	f := newFlagSet("whoami", env)
	u, kubeconfigp, kctxp := whoamiFlags(f)
	u.Stdout, u.Stderr = env.Stdout, env.Stderr
	if err := f.Parse(args); err != nil {
		return err
	}
	kubeconfig, kctx := *kubeconfigp, *kctxp
	if kubeconfig != "" {
		u.KubectlArgs = append(u.KubectlArgs, "--kubeconfig="+kubeconfig)
	}
	if kctx != "" {
		u.KubectlArgs = append(u.KubectlArgs, "--context="+kctx)
	}
	if err := u.Run(ctx); err != nil {
		return fmt.Errorf("whoami: %w", err)
	}
	return nil
}
