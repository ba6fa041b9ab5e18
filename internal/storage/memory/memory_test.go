package memory_test

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/conformance"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) storage.Storage {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

func BenchmarkRotation(b *testing.B) {
	s := memory.New()
	defer s.Close()
	conformance.BenchmarkRotation(b, s)
}
