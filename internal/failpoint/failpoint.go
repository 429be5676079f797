// Package failpoint lets crash tests stop the controller at a named point of
// its work, the way kill -9 or the OOM killer would. Proving that a Down
// survives a crash anywhere needs crashes at exact places, which no timing
// can give reliably.
//
// Failpoints exist only in binaries built with -tags failpoints, which only
// tests build. There HOMEROOM_FAILPOINT names a point ("name" or "name:N")
// and the process SIGKILLs itself the Nth time (default: the first) that
// point is reached. In every other build Hit is an empty function the
// compiler removes from its callers, so no variable can kill a production
// process: a set HOMEROOM_FAILPOINT only earns a warning on stderr.
package failpoint

// Env names the variable that arms a failpoint.
const Env = "HOMEROOM_FAILPOINT"

// killMessage is printed just before a failpoint kills the process. Only
// builds with failpoints contain it, which is how tests tell them apart.
const killMessage = "failpoint %s reached: killing the process\n"

// ignoredMessage warns, in a build without failpoints, that Env is set.
const ignoredMessage = "%s=%s ignored: this build has no failpoints (they need -tags failpoints)\n"
