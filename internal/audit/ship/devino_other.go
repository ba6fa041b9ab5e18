//go:build !unix

package ship

import "os"

// devIno has no portable equivalent here; the shipper then tells files
// apart by the hash of their first line alone.
func devIno(os.FileInfo) (uint64, uint64) { return 0, 0 }
