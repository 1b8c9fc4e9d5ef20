// Package durable writes files that survive a power cut: each is fsynced,
// and so is the folder that names it. One implementation for the result
// store, the report export and the model installer.
package durable

import (
	"fmt"
	"os"
)

// SyncDir fsyncs a folder, so the names created, renamed or removed in it
// are on the disk.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// WriteNew creates path (it must not exist), writes data and fsyncs it.
// Its folder is not synced: the caller syncs each folder once, after all
// its files.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
