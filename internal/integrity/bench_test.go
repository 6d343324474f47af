package integrity

import (
	"context"
	"testing"

	"github.com/vouch-dev/vouch/internal/pkgdb"
	"github.com/vouch-dev/vouch/internal/target"
	"github.com/vouch-dev/vouch/internal/testfixtures"
)

// BenchmarkVerifyImage measures inventory + integrity (with the unowned walk) on
// the 2 GiB fixture images, read without mounting, and reports the bytes of the
// image file read per run: the figure bench/packages.sh compares with debsums.
//
//	go test ./internal/integrity -run '^$' -bench VerifyImage -benchtime 1x
func BenchmarkVerifyImage(b *testing.B) {
	testfixtures.NeedFixtures(b)
	for _, name := range []string{"debian.raw", "debian.qcow2"} {
		b.Run(name, func(b *testing.B) {
			img := testfixtures.Path(b, name)
			var read int64
			for b.Loop() {
				tg, err := target.Open(img, target.Options{})
				if err != nil {
					b.Fatal(err)
				}
				inv, err := pkgdb.Read(context.Background(), tg.Root, pkgdb.Options{Files: true})
				if err != nil {
					b.Fatal(err)
				}
				res, err := Verify(context.Background(), tg.Root, inv, Options{Unowned: true})
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Problems) != 0 || res.Files < 10000 {
					b.Fatalf("%d problems, %d files", len(res.Problems), res.Files)
				}
				read = tg.Image.BytesRead()
				tg.Close()
			}
			b.ReportMetric(float64(read)/(1<<20), "MiB-read/op")
		})
	}
}
