package tables

import "runtime"

// Tests join other mount namespaces (setns) and switch uids (setresuid) on
// OS threads that they lock and then discard. A locked thread that is the
// main thread is not discarded but parked, and /proc/PID shows the main
// thread's namespaces and credentials: the whole test process would seem
// to have moved. Keeping the main goroutine on the main thread keeps every
// other goroutine off it.
func init() { runtime.LockOSThread() }
