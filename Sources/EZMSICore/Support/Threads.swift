import Foundation

/// Runs `work(0)` on the calling thread and `work(1)` … `work(count - 1)` on threads of their own, and returns when
/// all are done. The tree walks use it: their work is blocking system calls, which must stay off Swift's
/// cooperative pool.
func runOnThreads(_ count: Int, _ work: @escaping (Int) -> Void) {
    let group = DispatchGroup()
    for k in 1..<max(count, 1) {
        group.enter()
        Thread.detachNewThread {
            work(k)
            group.leave()
        }
    }
    work(0)
    group.wait()
}
