package screening

func runCrashWriter(dir string) int { return 3 }
func runLockHolder(dir string) int  { return 3 }
