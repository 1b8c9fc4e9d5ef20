package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"allscreen/model"
	"allscreen/screening"
)

func init() {
	register(command{name: "model", summary: "signed model bundles: keygen, bundle (lab); install, rollback, status (device)", run: runModel})
}

const (
	defaultTrustedKeys = "/etc/allscreen/trusted-keys"
)

var defaultModelsDir = filepath.Join(screening.DefaultStateDir, "models")

func runModel(argv []string) error {
	fs := newFlags("model", "keygen PREFIX | bundle --key KEY --manifest JSON --out FILE | install BUNDLE | rollback | status")
	key := fs.String("key", "", "bundle: the signing key `FILE` (PREFIX.key from keygen; keep it off the device)")
	manifest := fs.String("manifest", "", "bundle: the model manifest `JSON` (its ONNX and parity/NAME.json beside it)")
	out := fs.String("out", "", "bundle: the bundle `FILE` to write")
	trusted := fs.String("trusted", defaultTrustedKeys, "install: the trusted public keys `FILE`")
	models := fs.String("models", defaultModelsDir, "install, rollback, status: the installed models' `DIR`")
	args, err := parseFlags(fs, argv)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fs.Usage()
		return errUsage
	}
	switch {
	case args[0] == "keygen" && len(args) == 2:
		if err := model.GenerateKeys(args[1], "allscreen model signing key "+time.Now().UTC().Format(time.DateOnly)); err != nil {
			return err
		}
		fmt.Printf("wrote %s.key (secret: sign bundles with it, never copy it to a device) and %s.pub (add its line to %s on each device)\n",
			args[1], args[1], defaultTrustedKeys)
		return nil
	case args[0] == "bundle" && len(args) == 1 && *key != "" && *manifest != "" && *out != "":
		priv, err := model.ReadPrivateKey(*key)
		if err != nil {
			return err
		}
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		if err := model.WriteBundle(f, *manifest, priv, time.Now()); err != nil {
			f.Close()
			os.Remove(*out)
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", *out)
		return nil
	case args[0] == "install" && len(args) == 2:
		keys, err := model.ReadTrustedKeys(*trusted)
		if err != nil {
			return err
		}
		in, err := model.InstallBundle(args[1], *models, keys)
		if err != nil {
			return err
		}
		fmt.Printf("installed %s: known answers reproduced (largest difference %.2g)\n", in.Dir, in.Worst)
		if in.Previous != "" {
			fmt.Printf("previous model kept: %s (allscreen model rollback)\n", in.Previous)
		}
		fmt.Printf("the daemon uses it with [model] manifest = %q in /etc/allscreen/allscreen.toml; then: systemctl restart allscreend\n", in.Manifest)
		return nil
	case args[0] == "rollback" && len(args) == 1:
		back, err := model.Rollback(*models)
		if err != nil {
			return err
		}
		fmt.Printf("current model is again %s; restart allscreend to use it\n", back)
		return nil
	case args[0] == "status" && len(args) == 1:
		for _, l := range []string{"current", "previous"} {
			t, err := os.Readlink(filepath.Join(*models, l))
			if err != nil {
				t = "(none)"
			}
			fmt.Printf("%-8s %s\n", l, t)
		}
		return nil
	}
	fs.Usage()
	return errUsage
}
