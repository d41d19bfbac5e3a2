package quicpool

// What the external tests reach inside a pool.

// MaxQueuedGets is maxQueuedGets.
const MaxQueuedGets = maxQueuedGets

// AdmissionOf returns p's admission tokens: one per Get sent to the coordinator and not yet
// handled by it.
func AdmissionOf(p *Pool) chan struct{} { return p.cfg.Admission }
