package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// fileTarget stores objects as files under a directory. A Put writes a
// temporary file beside the object's name, syncs it, renames it into
// place and syncs the directory: a crash leaves the old object or the new
// one, never part of one (temporary files, ".tmp-" prefixed, are never
// listed).
type fileTarget struct {
	root string
}

func newFileTarget(root string) (*fileTarget, error) {
	root = filepath.Clean(root)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrTarget, root, err)
	}
	return &fileTarget{root: root}, nil
}

func (t *fileTarget) String() string { return "file://" + t.root }

func (t *fileTarget) path(name string) string {
	return filepath.Join(t.root, filepath.FromSlash(name))
}

func (t *fileTarget) Put(ctx context.Context, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := t.path(name)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(p)+"-")
	if err != nil {
		return fmt.Errorf("backup: %s: %w", name, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("backup: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("backup: sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("backup: close %s: %w", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("backup: rename %s: %w", name, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		_ = d.Close()
		if err != nil {
			return fmt.Errorf("backup: sync directory of %s: %w", name, err)
		}
	}
	return nil
}

func (t *fileTarget) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(t.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: read %s: %w", name, err)
	}
	return b, nil
}

func (t *fileTarget) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	// Walk the deepest directory the prefix names completely.
	base := t.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		base = t.path(prefix[:i])
	}
	var out []ObjectInfo
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
			return nil
		}
		rel, err := filepath.Rel(t.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		out = append(out, ObjectInfo{Name: name, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("backup: list %s: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (t *fileTarget) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := os.Remove(t.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: delete %s: %w", name, err)
	}
	// Empty directories left behind are removed up to the root.
	for dir := filepath.Dir(t.path(name)); dir != t.root && strings.HasPrefix(dir, t.root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}
