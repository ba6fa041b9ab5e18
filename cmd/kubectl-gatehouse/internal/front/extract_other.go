//go:build !unix

package front

import (
	"fmt"
	"io/fs"
	"os"
)

// exeSuffix is the extracted engine's file name suffix: Windows runs only
// files named .exe.
const exeSuffix = ".exe"

// checkPrivateDir checks that the engine folder is a folder. On Windows
// the user cache folder (%LocalAppData%) is private to the user through its
// inherited ACL; file modes say nothing there.
func checkPrivateDir(_ *os.Root, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("not a folder")
	}
	return nil
}

// checkFile has nothing to check beyond the content (see checkPrivateDir).
func checkFile(fs.FileInfo) error { return nil }
