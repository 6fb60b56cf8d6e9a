package ova

import (
	"archive/tar"
	"fmt"
	"io"
	"iter"
)

// Member is one file of an OVA (test helper), valid until the iteration moves on.
type Member struct {
	Name string
	Size int64
	Body io.Reader
}

// members iterates over the files of an OVA in archive order.
func members(r io.Reader) iter.Seq2[Member, error] {
	return func(yield func(Member, error) bool) {
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(Member{}, fmt.Errorf("reading ova: %w", err))
				return
			}
			if !yield(Member{Name: h.Name, Size: h.Size, Body: tr}, nil) {
				return
			}
		}
	}
}
