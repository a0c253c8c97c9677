/// The few Kafka protocol messages the broker probes speak (https://kafka.apache.org/protocol): ApiVersions v0,
/// SaslHandshake v0/v1, SaslAuthenticate v0, Metadata v1/v4. Non-flexible versions only, so every field is a fixed
/// big-endian integer, an int16-length string or an int32-length array.
public enum KafkaAPI: Int16, Sendable {
    case metadata = 3
    case saslHandshake = 17
    case apiVersions = 18
    case saslAuthenticate = 36
}

/// Kafka error codes the probes name.
public enum KafkaError {
    public static let unknownTopicOrPartition: Int16 = 3
    public static let leaderNotAvailable: Int16 = 5
    public static let topicAuthorizationFailed: Int16 = 29
    public static let unsupportedSaslMechanism: Int16 = 33
    public static let illegalSaslState: Int16 = 34
    public static let unsupportedVersion: Int16 = 35
    public static let saslAuthenticationFailed: Int16 = 58

    public static func name(_ code: Int16) -> String {
        switch code {
        case 0: return "NONE"
        case unknownTopicOrPartition: return "UNKNOWN_TOPIC_OR_PARTITION"
        case leaderNotAvailable: return "LEADER_NOT_AVAILABLE"
        case 9: return "REPLICA_NOT_AVAILABLE"
        case 17: return "INVALID_TOPIC_EXCEPTION"
        case topicAuthorizationFailed: return "TOPIC_AUTHORIZATION_FAILED"
        case 31: return "CLUSTER_AUTHORIZATION_FAILED"
        case unsupportedSaslMechanism: return "UNSUPPORTED_SASL_MECHANISM"
        case illegalSaslState: return "ILLEGAL_SASL_STATE"
        case unsupportedVersion: return "UNSUPPORTED_VERSION"
        case saslAuthenticationFailed: return "SASL_AUTHENTICATION_FAILED"
        default: return "error \(code)"
        }
    }
}

/// Builds a request body.
public struct KafkaWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}

    public mutating func int8(_ v: Int8) { bytes.append(UInt8(bitPattern: v)) }
    public mutating func bool(_ v: Bool) { bytes.append(v ? 1 : 0) }
    public mutating func int16(_ v: Int16) { let u = UInt16(bitPattern: v); bytes += [UInt8(u >> 8), UInt8(u & 0xff)] }
    public mutating func int32(_ v: Int32) {
        let u = UInt32(bitPattern: v)
        bytes += [UInt8(u >> 24), UInt8((u >> 16) & 0xff), UInt8((u >> 8) & 0xff), UInt8(u & 0xff)]
    }
    public mutating func string(_ s: String?) {
        guard let s else { int16(-1); return }
        let utf8 = Array(s.utf8)
        int16(Int16(utf8.count))
        bytes += utf8
    }
    public mutating func bytesField(_ b: [UInt8]) {
        int32(Int32(b.count))
        bytes += b
    }
    public mutating func array<T>(_ items: [T]?, _ each: (inout KafkaWriter, T) -> Void) {
        guard let items else { int32(-1); return }
        int32(Int32(items.count))
        for item in items { each(&self, item) }
    }
}

public struct KafkaDecodeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Reads a response body; every read checks the bounds.
public struct KafkaReader {
    let bytes: [UInt8]
    public private(set) var offset = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var remaining: Int { bytes.count - offset }

    mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else { throw KafkaDecodeError("response truncated at byte \(offset) (wanted \(n) more)") }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }
    public mutating func int8() throws -> Int8 { Int8(bitPattern: try take(1).first!) }
    public mutating func bool() throws -> Bool { try int8() != 0 }
    public mutating func int16() throws -> Int16 {
        let b = try take(2)
        return Int16(bitPattern: UInt16(b[b.startIndex]) << 8 | UInt16(b[b.startIndex + 1]))
    }
    public mutating func int32() throws -> Int32 {
        let b = Array(try take(4))
        return Int32(bitPattern: UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3]))
    }
    public mutating func int64() throws -> Int64 {
        let hi = Int64(try int32())
        let lo = Int64(UInt32(bitPattern: try int32()))
        return hi << 32 | lo
    }
    public mutating func string() throws -> String? {
        let n = Int(try int16())
        if n < 0 { return nil }
        return String(decoding: try take(n), as: UTF8.self)
    }
    public mutating func bytesField() throws -> [UInt8]? {
        let n = Int(try int32())
        if n < 0 { return nil }
        return Array(try take(n))
    }
    public mutating func array<T>(_ each: (inout KafkaReader) throws -> T) throws -> [T] {
        let n = Int(try int32())
        if n < 0 { return [] }
        // Each element is at least one byte: a count larger than what is left is garbage, not a reason to allocate.
        guard n <= remaining else { throw KafkaDecodeError("array of \(n) elements with \(remaining) bytes left") }
        var out: [T] = []
        for _ in 0..<n { out.append(try each(&self)) }
        return out
    }
}

public enum KafkaWire {
    public static let clientId = "ezmsi"
    /// Larger answers to our small requests are not Kafka (an HTTP or TLS server, or garbage).
    public static let maxResponse = 16 * 1024 * 1024

    /// A size-prefixed request with a v1 header (api key, version, correlation id, client id).
    public static func request(_ api: KafkaAPI, version: Int16, correlation: Int32, body: [UInt8]) -> [UInt8] {
        var w = KafkaWriter()
        w.int16(api.rawValue)
        w.int16(version)
        w.int32(correlation)
        w.string(clientId)
        let payload = w.bytes + body
        var frame = KafkaWriter()
        frame.int32(Int32(payload.count))
        return frame.bytes + payload
    }

    // MARK: ApiVersions v0

    public struct ApiVersions: Sendable, Equatable {
        public var errorCode: Int16
        public var ranges: [Int16: ClosedRange<Int16>]

        public init(errorCode: Int16, ranges: [Int16: ClosedRange<Int16>]) {
            self.errorCode = errorCode
            self.ranges = ranges
        }

        /// The highest version both sides speak, of those we implement.
        public func pick(_ api: KafkaAPI, from ours: [Int16]) -> Int16? {
            guard let range = ranges[api.rawValue] else { return nil }
            return ours.filter { range.contains($0) }.max()
        }
    }

    public static func decodeApiVersions(_ body: [UInt8]) throws -> ApiVersions {
        var r = KafkaReader(body)
        let error = try r.int16()
        var ranges: [Int16: ClosedRange<Int16>] = [:]
        let entries = try r.array { r -> (Int16, Int16, Int16) in (try r.int16(), try r.int16(), try r.int16()) }
        for (key, lo, hi) in entries {
            guard lo <= hi else { throw KafkaDecodeError("api \(key) has versions \(lo)...\(hi)") }
            ranges[key] = lo...hi
        }
        return ApiVersions(errorCode: error, ranges: ranges)
    }

    // MARK: SaslHandshake v0/v1, SaslAuthenticate v0

    public static func saslHandshakeBody(_ mechanism: String) -> [UInt8] {
        var w = KafkaWriter()
        w.string(mechanism)
        return w.bytes
    }

    public static func decodeSaslHandshake(_ body: [UInt8]) throws -> (errorCode: Int16, mechanisms: [String]) {
        var r = KafkaReader(body)
        let error = try r.int16()
        let mechanisms = try r.array { try $0.string() ?? "" }
        return (error, mechanisms)
    }

    public static func saslAuthenticateBody(_ token: [UInt8]) -> [UInt8] {
        var w = KafkaWriter()
        w.bytesField(token)
        return w.bytes
    }

    public static func decodeSaslAuthenticate(_ body: [UInt8]) throws -> (errorCode: Int16, message: String?, token: [UInt8]) {
        var r = KafkaReader(body)
        let error = try r.int16()
        let message = try r.string()
        let token = try r.bytesField() ?? []
        return (error, message, token)
    }

    /// The PLAIN token (RFC 4616): empty authorization id, user name, password.
    public static func plainToken(username: String, password: String) -> [UInt8] {
        [0] + Array(username.utf8) + [0] + Array(password.utf8)
    }

    // MARK: Metadata v1 / v4

    public struct Partition: Sendable, Equatable {
        public var errorCode: Int16
        public var index: Int32
        public var leader: Int32

        public init(errorCode: Int16, index: Int32, leader: Int32) {
            self.errorCode = errorCode
            self.index = index
            self.leader = leader
        }
    }

    public struct TopicMetadata: Sendable, Equatable {
        public var errorCode: Int16
        public var name: String
        public var partitions: [Partition]

        public init(errorCode: Int16, name: String, partitions: [Partition]) {
            self.errorCode = errorCode
            self.name = name
            self.partitions = partitions
        }
    }

    public struct Metadata: Sendable, Equatable {
        public var brokers: Int
        public var clusterId: String?
        public var topics: [TopicMetadata]

        public init(brokers: Int, clusterId: String?, topics: [TopicMetadata]) {
            self.brokers = brokers
            self.clusterId = clusterId
            self.topics = topics
        }
    }

    /// v4 adds `allow_auto_topic_creation`, which we set to false: looking a topic up must not create it.
    public static func metadataBody(topics: [String], version: Int16) -> [UInt8] {
        var w = KafkaWriter()
        w.array(topics) { $0.string($1) }
        if version >= 4 { w.bool(false) }
        return w.bytes
    }

    public static func decodeMetadata(_ body: [UInt8], version: Int16) throws -> Metadata {
        var r = KafkaReader(body)
        if version >= 3 { _ = try r.int32() }   // throttle_time_ms
        let brokers = try r.array { r -> Int32 in
            let id = try r.int32()
            _ = try r.string()      // host
            _ = try r.int32()       // port
            if version >= 1 { _ = try r.string() }  // rack
            return id
        }
        let cluster = version >= 2 ? try r.string() : nil
        if version >= 1 { _ = try r.int32() }   // controller_id
        let topics = try r.array { r -> TopicMetadata in
            let error = try r.int16()
            let name = try r.string() ?? ""
            if version >= 1 { _ = try r.bool() }    // is_internal
            let partitions = try r.array { r -> Partition in
                let pe = try r.int16()
                let index = try r.int32()
                let leader = try r.int32()
                if version >= 7 { _ = try r.int32() }
                _ = try r.array { try $0.int32() }  // replicas
                _ = try r.array { try $0.int32() }  // isr
                if version >= 5 { _ = try r.array { try $0.int32() } }  // offline replicas
                return Partition(errorCode: pe, index: index, leader: leader)
            }
            return TopicMetadata(errorCode: error, name: name, partitions: partitions)
        }
        return Metadata(brokers: brokers.count, clusterId: cluster, topics: topics)
    }
}
