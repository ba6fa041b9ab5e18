package cli

import (
	"context"
	"fmt"

	"github.com/gatehouse-dev/gatehouse/internal/login/usecase"
)

func whoami(ctx context.Context, args []string, env Env) error {
	u := &usecase.Whoami{Stdout: env.Stdout, Stderr: env.Stderr}
	var kubeconfig, kctx string
	f := newFlagSet("whoami", env)
	f.StringVar(&kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: kubectl's)")
	f.StringVar(&kctx, "context", "", "The kubeconfig context to use")
	f.BoolVar(&u.CanI, "can-i", false, "Also list what this identity may do (SelfSubjectRulesReview)")
	f.StringVarP(&u.Namespace, "namespace", "n", "default", "Namespace for --can-i")
	f.StringVar(&u.Kubectl, "kubectl", "kubectl", "The kubectl command")
	if err := f.Parse(args); err != nil {
		return err
	}
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
