#if canImport(Glibc)
import CMalloc
#endif

/// glibc hands big freed blocks back to the kernel: blocks above the mmap threshold are unmapped
/// on free, and free memory at the top of the heap is trimmed. A training step allocates and frees
/// the same tens of megabytes of scratch buffers every time, so each step page-faulted all of
/// them in again (the kernel zeroing every page) and paid TLB shootdowns on the unmaps: 20-30%
/// of a cached chapter-6 step (docs/benchmarks.md, "Allocator"). Raising both limits keeps freed
/// blocks in the process for the next step. Applied once per process by the first `GPT2Model`.
enum AllocatorTuning {
    static let applied: Bool = {
        #if canImport(Glibc)
        // 32 MiB is glibc's largest accepted mmap threshold on 64-bit; bigger blocks (whole
        // parameter buffers, allocated once) still get their own mappings.
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 1 << 30)
        _ = mallopt(M_TOP_PAD, 64 << 20)
        return true
        #else
        return false
        #endif
    }()
}
