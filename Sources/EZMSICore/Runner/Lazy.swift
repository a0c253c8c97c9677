import Foundation

/// A value computed at most once, on first use, by whichever thread asks first; others wait for it.
/// This is how a fact is "read once": two probes that need the image read the same `Lazy`.
public final class Lazy<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value?
    private var compute: (() -> Value)?

    public init(_ compute: @escaping () -> Value) { self.compute = compute }

    public func get() -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let value { return value }
        let v = compute!()
        value = v
        compute = nil
        return v
    }

    /// The value if it was already gathered (never triggers gathering).
    public func peek() -> Value? {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    /// Replaces the gatherer (tests and examples provide facts directly).
    public func set(_ v: Value) {
        lock.lock()
        value = v
        compute = nil
        lock.unlock()
    }
}
