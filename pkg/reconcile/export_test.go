package reconcile

// StepsWaiting is how many Docker steps wait for a slot of the global limit.
func (r *Reconciler) StepsWaiting() int64 { return r.slots.waiting.Load() }
