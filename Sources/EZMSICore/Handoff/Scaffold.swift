import Foundation

/// `ezmsi init`: a deployment folder for one program. Files are created with O_EXCL, so nothing is ever
/// overwritten; if one cannot be written, the ones already written are removed again.
public enum Scaffold {
    public struct File {
        public var name: String
        public var mode: mode_t
        public var content: String
    }

    /// The recipe's `[broker]` section: every value comes from the env-file.
    public static let brokerSection = """
        [broker]
        bootstrap.servers = $CONFLUENT_BOOTSTRAP_SERVERS
        sasl.mechanism    = PLAIN
        security.protocol = SASL_SSL
        sasl.username     = $CONFLUENT_USERNAME
        sasl.password     = $CONFLUENT_PASSWORD

        """

    public static func files(for program: ProgramSpec, directory: String) -> [File] {
        let env = ProgramTable.recipeCredentials.map { "\($0)=" }.joined(separator: "\n") + "\n"
        var config = brokerSection
        if program.requiredSections.contains("producer") {
            config += "\n[producer]\n"
            for need in program.requiredValues where need.section == "producer" { config += "\(need.key) = \(need.value)\n" }
        }
        if program.requiredSections.contains("consumer") {
            config += "\n[consumer]\nauto.offset.reset = earliest\nenable.auto.commit = False\n"
            for need in program.requiredValues where need.section == "consumer" { config += "\(need.key) = \(need.value)\n" }
        }
        if program.requiredSections.contains("s3") {
            config += "\n[s3]\naccess_key_id = $ACCESS_KEY_ID\nsecret_key_id = $SECRET_KEY_ID\nendpoint_url = $ENDPOINT_URL\nregion = $REGION\n"
        }
        let command = exampleCommand(program)
        let tracker: [(String, String)] = [
            ("type", program.role.rawValue), ("service_name", ""), ("service_local_location", directory),
            ("service_local_target_folder", program.folderNeed == .none ? "" : "./data"), ("installation_notes", ""),
            ("primary_contact_name", ""), ("primary_contact_email", ""), ("machine_metadata", ""), ("code_metadata", ""),
            ("openmsistream_command", command), ("image", DeploymentResolver.defaultImage),
        ]
        let json = "{\n" + tracker.map { "    \(jsonString($0.0)): \(jsonString($0.1))" }.joined(separator: ",\n") + "\n}\n"
        return [
            File(name: "openmsi.env", mode: 0o600, content: env),
            File(name: "config.config", mode: 0o644, content: config),
            File(name: "tracker.json", mode: 0o644, content: json),
            File(name: ".gitignore", mode: 0o644, content: "# credentials never go into git\nopenmsi.env\n"),
        ]
    }

    static func exampleCommand(_ program: ProgramSpec) -> String {
        var words = [program.name]
        for spec in program.positionals {
            switch spec.type {
            case .existingDirectory, .createDirectory: words.append("data")
            case .existingFile: words.append("data/FILE")
            default: words.append(spec.name.uppercased())
            }
        }
        if program.readsConfig { words += ["--config", "config.config"] }
        if program.option(named: "topic_name") != nil { words += ["--topic_name", "TOPIC"] }
        if program.option(named: "consumer_group_id") != nil, program.role != .producer { words += ["--consumer_group_id", "GROUP"] }
        return words.joined(separator: " ")
    }

    static func jsonString(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }

    /// Writes the files; throws `InputError` naming what already exists, having written nothing.
    public static func write(program: ProgramSpec, directory: String) throws -> [String] {
        let files = files(for: program, directory: directory)
        let existing = files.map { directory + "/" + $0.name }.filter { FileManager.default.fileExists(atPath: $0) }
        if !existing.isEmpty {
            throw InputError(file: existing[0], line: nil, message: "already exists; ezmsi init never overwrites (\(existing.count) file\(existing.count == 1 ? "" : "s") in the way)",
                             fix: "choose an empty or new folder, or move the existing files away")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw InputError(file: directory, line: nil, message: "cannot create the folder: \(error.localizedDescription)",
                             fix: "choose a folder you can write to")
        }
        var written: [String] = []
        for file in files {
            let path = directory + "/" + file.name
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, file.mode)
            var ok = fd >= 0
            if ok {
                fchmod(fd, file.mode)   // umask must not widen or narrow the intended mode
                let bytes = Array(file.content.utf8)
                ok = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) } == bytes.count && fsync(fd) == 0
                close(fd)
                if ok { written.append(path) } else { unlink(path) }
            }
            if !ok {
                let why = String(cString: strerror(errno))
                for done in written { unlink(done) }
                throw InputError(file: path, line: nil, message: "cannot write: \(why); nothing was left behind",
                                 fix: "check free space and permissions of \(directory)")
            }
        }
        return written
    }
}
