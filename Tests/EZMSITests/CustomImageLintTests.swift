import Foundation
import Testing
@testable import EZMSIChecks
@testable import EZMSICore

/// The custom_image linter: the real EZOpenMSIStream sample, a good image, and one trigger/no-trigger pair per rule.
struct CustomImageLintTests {
    static let sample = Repo.root + "/Tests/Fixtures/samples/ezopenmsistream/custom_image"
    // The probe's own good example: one copy of a clean custom image.
    static let digest = CustomImageLint.digest
    static let goodDockerfile = CustomImageLint.goodDockerfile
    static let goodScript = CustomImageLint.goodScript

    /// Lints an in-memory build context: Dockerfile, startup-script.sh (with `mode`), config.config and `extra` files.
    func lint(_ dockerfile: String = goodDockerfile, script: String? = goodScript, mode: UInt32 = 0o755,
              extra: [String: (String, UInt32)] = [:]) -> [CustomImageIssue] {
        var files: [String: (String, UInt32)] = ["Dockerfile": (dockerfile, 0o644), "config.config": ("[broker]\n", 0o644)]
        if let script { files["startup-script.sh"] = (script, mode) }
        for (k, v) in extra { files[k] = v }
        return CustomImageLinter.lint(CustomImageFolder.memory(files))
    }

    func codes(_ issues: [CustomImageIssue]) -> Set<String> { Set(issues.map(\.code)) }

    /// A Dockerfile built from the good one with `lines` replacing its COPY/ENTRYPOINT lines.
    func dockerfile(_ lines: String...) -> String {
        "FROM openmsi/openmsistream@sha256:\(Self.digest)\n" + lines.joined(separator: "\n") + "\n"
    }

    func script(_ lines: String...) -> String {
        "#!/bin/bash\nset -euo pipefail\ncd /home/openmsi\n" + lines.joined(separator: "\n") + "\n"
    }

    // MARK: - The real sample and the good image

    @Test func realSampleProducesEveryDocumentedDefect() throws {
        let issues = CustomImageLinter.lint(directory: Self.sample)
        let got = Set(issues.map { "\(($0.file as NSString).lastPathComponent):\($0.line.map(String.init) ?? "-") \($0.code)" })
        let expected: Set<String> = [
            // Dockerfile items 1–5 of reference §7
            "Dockerfile:5 arg-before-from-unscoped",
            "Dockerfile:3 from-unpinned",
            "Dockerfile:6 add-instead-of-copy", "Dockerfile:7 add-instead-of-copy",
            "Dockerfile:6 chmod-world-writable", "Dockerfile:7 chmod-world-writable",
            "Dockerfile:6 chmod-executable-config",
            "Dockerfile:6 chmod-needs-buildkit", "Dockerfile:7 chmod-needs-buildkit",
            "Dockerfile:9 entrypoint-shell-form",
            "Dockerfile:9 dockerfile-no-final-newline",
            // startup-script.sh items 1–6
            "startup-script.sh:1 script-shebang-missing",
            "startup-script.sh:4 script-no-exec",
            "startup-script.sh:4 script-unquoted-variable",
            "startup-script.sh:4 script-relative-path",
            "startup-script.sh:4 script-no-consumer-group",
            "startup-script.sh:4 script-no-final-newline",
            "startup-script.sh:- script-not-executable",
            "startup-script.sh:- script-no-strict-mode",
        ]
        #expect(got == expected, "missing \(expected.subtracting(got).sorted()), extra \(got.subtracting(expected).sorted())")
        #expect(issues.count == expected.count)
        #expect(issues.allSatisfy { $0.file.hasPrefix(Self.sample + "/") && !$0.fix.isEmpty })

        func find(_ code: String) throws -> CustomImageIssue { try #require(issues.first { $0.code == code }) }
        let arg = try find("arg-before-from-unscoped")
        #expect(arg.severity == .fail && arg.message.contains("ROOT") && arg.message.contains("line 5") && arg.message.contains("line 1"))
        #expect(try find("chmod-world-writable").severity == .fail)
        #expect(try find("entrypoint-shell-form").severity == .fail)
        #expect(try find("script-no-exec").severity == .fail)
        let shebang = try find("script-shebang-missing")
        #expect(shebang.message.contains("missing `!`"))
        #expect(shebang.severity == .warn)   // sourced with `.`: harmless today, fatal once executed
        let group = try find("script-no-consumer-group")
        #expect(group.message.contains("DataFileDownloadDirectory") && group.fix.contains("--consumer_group_id UCSB"))
        let unquoted = try find("script-unquoted-variable")
        #expect(unquoted.message.contains("$MODULE") && unquoted.message.contains("$TOPIC_NAME"))
        #expect(unquoted.fix.contains("\"$MODULE\" data --config config.config --topic_name \"$TOPIC_NAME\""))
        #expect(try find("script-relative-path").message.contains("data, config.config"))
    }

    @Test func probeReportsTheSampleWithLocations() throws {
        let dir = TempDir("custom-image")
        for name in ["Dockerfile", "config.config", "startup-script.sh"] {
            let text = try String(contentsOfFile: Self.sample + "/" + name, encoding: .utf8)
            dir.write("custom_image/" + name, text)
        }
        var deployment = ExampleFacts.make().deployment
        deployment.directory = dir.path
        let outcome = try CustomImageLint().check(Facts(deployment: deployment, environment: [:], timeout: 1))
        #expect(outcome.status == .fail)
        let finding = try #require(outcome.findings.first { $0.code == "entrypoint-shell-form" })
        #expect(finding.location == Location(file: dir.path + "/custom_image/Dockerfile", line: 9))
        #expect(finding.remediation?.text.contains("ENTRYPOINT [\"/home/openmsi/startup-script.sh\"]") == true)

        deployment.directory = dir.path + "/nowhere"
        let absent = try CustomImageLint().check(Facts(deployment: deployment, environment: [:], timeout: 1))
        #expect(absent.status == .pass && absent.message.contains("no custom image folder"))
    }

    @Test func goodImageOnDiskHasNoIssues() {
        let dir = TempDir("custom-image-good")
        dir.write("Dockerfile", Self.goodDockerfile)
        dir.write("startup-script.sh", Self.goodScript, mode: 0o755)
        dir.write("config.config", ExampleFacts.goodProducerConfig)
        dir.write("openmsi.env", ExampleFacts.goodEnv, mode: 0o600)   // present but never copied
        #expect(CustomImageLinter.lint(directory: dir.path) == [])
        #expect(lint() == [])
    }

    // MARK: - Parser

    @Test func parserHandlesContinuationsCommentsDirectivesHeredocsAndJSON() throws {
        let text = """
            # syntax=docker/dockerfile:1
            # escape=\\

            # a comment
            FROM --platform=linux/amd64 openmsi/openmsistream:1.8.7 AS base
            RUN apt-get update && \\
            # a comment inside the continuation
                apt-get install -y curl \\\t
                && true
            COPY --chown=openmsi:openmsi --chmod=644 a b /dst/
            RUN <<EOF
            echo hi
            EOF
            ENTRYPOINT ['bash']
            CMD ["-c", "x"]
            """
        let d = Dockerfile.parse(text)
        #expect(d.directives == ["syntax": "docker/dockerfile:1", "escape": "\\"])
        #expect(d.instructions.map(\.keyword) == ["FROM", "RUN", "COPY", "RUN", "ENTRYPOINT", "CMD"])
        #expect(d.instructions.map(\.line) == [5, 6, 10, 11, 14, 15])
        #expect(d.instructions[0].flag("platform")?.value == "linux/amd64")
        #expect(d.instructions[0].words == ["openmsi/openmsistream:1.8.7", "AS", "base"])
        #expect(d.instructions[1].endLine == 9)
        #expect(d.instructions[1].arguments.contains("apt-get install -y curl") && !d.instructions[1].arguments.contains("comment"))
        #expect(d.instructions[2].flags.map(\.name) == ["chown", "chmod"] && d.instructions[2].words == ["a", "b", "/dst/"])
        #expect(d.instructions[3].heredocs == ["echo hi"] && d.instructions[3].endLine == 13)
        #expect(d.instructions[4].execForm == nil && d.instructions[4].invalidJSON)
        #expect(d.instructions[5].execForm == ["-c", "x"])
        #expect(!d.endsWithNewline)
        // The backtick escape directive.
        let windows = Dockerfile.parse("# escape=`\nFROM x\nRUN a `\n  b\n")
        #expect(windows.instructions.count == 2 && windows.instructions[1].arguments == "a   b")
    }

    @Test func shellParserSplitsCommandsAndFindsUnquotedVariables() {
        let s = ShellScript.parse("#!/bin/bash\nA=1 # c\nfoo \"$A\" $B 'x $C' 2>&1 && bar \\\n  ${D}\ncat <<EOF\n$E\nEOF\nbaz\n")
        #expect(s.commands.map { $0.words.map(\.value) } == [["A=1"], ["foo", "$A", "$B", "x $C", "2>&1"], ["bar", "${D}"], ["cat", "<<EOF"], ["baz"]])
        #expect(s.commands.map(\.line) == [2, 3, 3, 5, 8])
        #expect(s.commands[1].words.flatMap(\.unquotedVariables) == ["B"])
        #expect(s.commands[2].words.flatMap(\.unquotedVariables) == ["D"])
    }

    // MARK: - Dockerfile rules, one trigger and one non-trigger each

    @Test func argBeforeFrom() {
        let trig = lint("ARG ROOT=/home/openmsi\n" + dockerfile("WORKDIR ${ROOT}", "COPY startup-script.sh $ROOT/", #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#))
        #expect(trig.filter { $0.code == "arg-before-from-unscoped" }.map(\.line) == [3, 4])
        let redeclared = lint("ARG ROOT=/home/openmsi\n" + dockerfile("ARG ROOT", "WORKDIR ${ROOT}", "COPY startup-script.sh $ROOT/", #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#))
        #expect(!codes(redeclared).contains("arg-before-from-unscoped"))
        let usedInFrom = lint("ARG BASE=openmsi/openmsistream@sha256:\(Self.digest)\nFROM ${BASE}\n" + Self.goodDockerfile.split(separator: "\n").dropFirst().joined(separator: "\n") + "\n")
        #expect(usedInFrom == [])
    }

    @Test func fromPinning() {
        #expect(codes(lint(Self.goodDockerfile.replacingOccurrences(of: "@sha256:\(Self.digest)", with: ":1.8.7"))) == ["from-unpinned"])
        #expect(lint(Self.goodDockerfile) == [])
        let multiStage = "FROM busybox@sha256:\(Self.digest) AS tools\n" + Self.goodDockerfile.replacingOccurrences(
            of: "FROM openmsi/openmsistream@sha256:\(Self.digest)", with: "FROM openmsi/openmsistream@sha256:\(Self.digest) AS app\nCOPY --from=tools /bin/true /tmp/true")
        #expect(lint(multiStage) == [])
        #expect(!codes(lint("FROM scratch\nCOPY startup-script.sh /s.sh\nENTRYPOINT [\"/s.sh\"]\n")).contains("from-unpinned"))
    }

    @Test func addInsteadOfCopy() {
        let entry = #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#
        #expect(codes(lint(dockerfile("ADD startup-script.sh /home/openmsi/", entry))) == ["add-instead-of-copy"])
        #expect(lint(dockerfile("COPY startup-script.sh /home/openmsi/", "ADD https://example.org/x.whl /tmp/", "ADD tools.tar.gz /opt/", entry)) == [])
    }

    @Test func chmodRules() {
        let entry = #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#
        let ww = lint(dockerfile("COPY --chmod=666 config.config /home/openmsi/", "COPY --chmod=a+w startup-script.sh /home/openmsi/", entry))
        #expect(ww.filter { $0.code == "chmod-world-writable" }.map(\.line) == [2, 3])
        #expect(ww.filter { $0.code == "chmod-needs-buildkit" }.count == 2)
        let execConfig = lint(dockerfile("COPY --chmod=755 config.config /home/openmsi/", "COPY --chmod=755 startup-script.sh /home/openmsi/", entry))
        #expect(codes(execConfig) == ["chmod-executable-config", "chmod-needs-buildkit"])
        #expect(execConfig.filter { $0.code == "chmod-executable-config" }.map(\.line) == [2])
        let fine = lint(dockerfile("COPY --chmod=644 config.config /home/openmsi/", "COPY --chmod=u=rwx,go=rx startup-script.sh /home/openmsi/", entry))
        #expect(codes(fine) == ["chmod-needs-buildkit"])
        #expect(CustomImageLinter.chmodBits("u=rwx,go=rx") == 0o755 && CustomImageLinter.chmodBits("777") == 0o777)
        #expect(lint() == [])   // no --chmod, no warning
    }

    @Test func secretsInTheImage() {
        let entry = #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#
        let env: [String: (String, UInt32)] = ["openmsi.env": (ExampleFacts.goodEnv, 0o600)]
        let named = lint(dockerfile("COPY openmsi.env /home/openmsi/", "COPY startup-script.sh /home/openmsi/", entry), extra: env)
        #expect(codes(named) == ["secret-in-image"])
        let everything = lint(dockerfile("COPY . /home/openmsi/", entry), extra: env)
        #expect(everything.map(\.code) == ["secret-in-image"] && everything[0].message.contains("openmsi.env"))
        let ignored = lint(dockerfile("COPY . /home/openmsi/", entry), extra: env.merging([".dockerignore": ("**/*.env\n", 0o644)]) { a, _ in a })
        #expect(ignored == [])
        #expect(lint(extra: env) == [])
    }

    @Test func entrypointAndCmdForms() {
        let shell = lint(dockerfile("COPY startup-script.sh /home/openmsi/", "ENTRYPOINT /home/openmsi/startup-script.sh"))
        #expect(shell.map(\.code) == ["entrypoint-shell-form"] && shell[0].severity == .fail && shell[0].line == 3)
        let quotes = lint(dockerfile("COPY startup-script.sh /home/openmsi/", "ENTRYPOINT ['/home/openmsi/startup-script.sh']"))
        #expect(codes(quotes).contains("exec-form-invalid-json") && !codes(quotes).contains("entrypoint-shell-form"))
        let cmdShell = lint(dockerfile("COPY startup-script.sh /home/openmsi/", "CMD /home/openmsi/startup-script.sh"))
        #expect(cmdShell.map(\.code) == ["cmd-shell-form"] && cmdShell[0].severity == .fail)
        // With the official ENTRYPOINT ["bash"], an exec-form CMD naming the script runs it through bash.
        let cmdExec = lint(dockerfile("COPY startup-script.sh /home/openmsi/", #"CMD ["/home/openmsi/startup-script.sh"]"#), mode: 0o644)
        #expect(cmdExec == [])
        #expect(lint() == [])
    }

    @Test func structuralRules() {
        #expect(codes(lint("COPY startup-script.sh /s.sh\n")) == ["no-from", "instruction-before-from"])
        #expect(codes(lint(dockerfile("COPY startup-script.sh /home/openmsi/", "ENTRYPONT [\"x\"]"))).contains("unknown-instruction"))
        #expect(codes(lint(dockerfile("USER root", "COPY startup-script.sh /home/openmsi/", #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#))) == ["user-root"])
        #expect(lint(dockerfile("USER root", "COPY startup-script.sh /home/openmsi/", "USER openmsi", #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#)) == [])
        let noNewline = lint(String(Self.goodDockerfile.dropLast()))
        #expect(noNewline.map(\.code) == ["dockerfile-no-final-newline"] && noNewline[0].line == 4)
        #expect(CustomImageLinter.lint(CustomImageFolder.memory(["startup-script.sh": (Self.goodScript, 0o755)])).map(\.code) == ["dockerfile-missing"])
        let missing = lint(Self.goodDockerfile, script: nil)
        #expect(missing.map(\.code) == ["script-missing"] && missing[0].line == 3)
    }

    // MARK: - Script rules, one trigger and one non-trigger each

    @Test func shebang() {
        let broken = "#/bin/bash" + Self.goodScript.dropFirst("#!/bin/bash".count)
        let direct = lint(script: broken)
        #expect(direct.map(\.code) == ["script-shebang-missing"] && direct[0].severity == .fail && direct[0].message.contains("missing `!`"))
        let sourced = lint(dockerfile("COPY startup-script.sh /home/openmsi/", #"ENTRYPOINT ["/bin/sh", "-c", ". /home/openmsi/startup-script.sh"]"#), script: broken)
        #expect(sourced.map(\.code) == ["script-shebang-missing"] && sourced[0].severity == .warn)
        let viaBash = lint(dockerfile("COPY startup-script.sh /home/openmsi/", #"ENTRYPOINT ["bash", "/home/openmsi/startup-script.sh"]"#), script: broken, mode: 0o644)
        #expect(viaBash.map(\.severity) == [.warn])
        #expect(lint() == [])
    }

    @Test func crlf() {
        #expect(codes(lint(script: Self.goodScript.replacingOccurrences(of: "\n", with: "\r\n"))) == ["script-crlf"])
    }

    @Test func strictMode() {
        #expect(codes(lint(script: Self.goodScript.replacingOccurrences(of: "set -euo pipefail\n", with: ""))) == ["script-no-strict-mode"])
        #expect(codes(lint(script: Self.goodScript.replacingOccurrences(of: "set -euo pipefail", with: "set -eu"))) == ["script-no-strict-mode"])
        #expect(lint(script: Self.goodScript.replacingOccurrences(of: "set -euo pipefail", with: "set -e -u -o pipefail")) == [])
        #expect(lint(script: Self.goodScript.replacingOccurrences(of: "set -euo pipefail", with: "set -o errexit -o nounset -o pipefail")) == [])
    }

    @Test func exec() {
        let noExec = lint(script: script("echo starting", "DataFileUploadDirectory data --config config.config --topic_name \"x\""))
        #expect(noExec.map(\.code) == ["script-no-exec"] && noExec[0].line == 5 && noExec[0].severity == .fail)
        #expect(lint(script: script("echo starting", "exec DataFileUploadDirectory data --config config.config", "")) == [])
        #expect(lint(script: script("trap 'kill $pid' TERM", "DataFileUploadDirectory data --config config.config & pid=$!", "wait \"$pid\"")) == [])
    }

    @Test func unquotedVariables() {
        let issues = lint(script: script("TOPIC=x", "exec DataFileUploadDirectory data --config config.config --topic_name $TOPIC"))
        #expect(issues.map(\.code) == ["script-unquoted-variable"] && issues[0].line == 5)
        #expect(lint(script: script("TOPIC=x", "export OTHER=$TOPIC", "exec DataFileUploadDirectory data --config config.config --topic_name \"$TOPIC\" \"$@\"")) == [])
    }

    @Test func relativePaths() {
        let command = "exec DataFileUploadDirectory data --config config.config --topic_name x"
        let noCd = "#!/bin/bash\nset -euo pipefail\n\(command)\n"
        let issues = lint(script: noCd)
        #expect(issues.map(\.code) == ["script-relative-path"] && issues[0].line == 3 && issues[0].message.contains("data, config.config"))
        #expect(lint(dockerfile("WORKDIR /home/openmsi", "COPY startup-script.sh /home/openmsi/", #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#), script: noCd) == [])
        #expect(lint(script: "#!/bin/bash\nset -euo pipefail\nexec DataFileUploadDirectory /home/openmsi/data --config /home/openmsi/config.config --topic_name x\n") == [])
        #expect(lint(script: "#!/bin/bash\nset -euo pipefail\nexec DataFileUploadDirectory /home/openmsi/data --config prod --topic_name x\n") == [])
    }

    @Test func consumerGroup() {
        let issues = lint(script: script("MODULE=DataFileDownloadDirectory", "exec \"$MODULE\" data --config config.config --topic_name x"))
        #expect(issues.map(\.code) == ["script-no-consumer-group"] && issues[0].line == 5)
        #expect(lint(script: script("exec DataFileDownloadDirectory data --config config.config --topic_name x --consumer_group_id lab")) == [])
        #expect(lint(script: script("exec S3TransferStreamProcessor bucket --config config.config --consumer_group_id=lab")) == [])
        #expect(lint() == [])   // a producer has no group
    }

    @Test func executableBit() {
        let direct = lint(mode: 0o644)
        #expect(direct.map(\.code) == ["script-not-executable"] && direct[0].severity == .fail && !direct[0].commands.isEmpty)
        let viaChmod = lint(dockerfile("COPY --chmod=755 startup-script.sh /home/openmsi/", #"ENTRYPOINT ["/home/openmsi/startup-script.sh"]"#), mode: 0o644)
        #expect(viaChmod.filter { $0.code == "script-not-executable" }.map(\.severity) == [.warn])
        #expect(lint(dockerfile("COPY startup-script.sh /home/openmsi/", #"ENTRYPOINT ["bash", "/home/openmsi/startup-script.sh"]"#), mode: 0o644) == [])
        #expect(lint(mode: 0o755) == [])
    }

    /// Arbitrary text never crashes the parsers or the rules (the files are user input).
    @Test func arbitraryInputDoesNotCrash() {
        let pieces = ["FROM ", "x", "@sha256:", "ARG ", "A=", "$", "{", "}", "${A:-b}", "\\", "\n", "\r\n", " ", "\t", "#", "# escape=`\n",
                      "`", "[", "]", "\"", "'", "COPY ", "ADD ", "--chmod=", "7", "--from=a ", "ENTRYPOINT ", "CMD ", ". ", "./s.sh",
                      "<<EOF\n", "EOF", "exec ", "$(", ")", "&", "|", ";", "cd ", "set -", "DataFileDownloadDirectory ", "USER root"]
        var seed: UInt64 = 0x9E3779B97F4A7C15
        func next() -> Int { seed = seed &* 6364136223846793005 &+ 1442695040888963407; return Int(seed >> 33) }
        for _ in 0..<400 {
            let dockerfile = (0..<(next() % 40)).map { _ in pieces[next() % pieces.count] }.joined()
            let script = (0..<(next() % 40)).map { _ in pieces[next() % pieces.count] }.joined()
            let issues = CustomImageLinter.lint(CustomImageFolder.memory(["Dockerfile": (dockerfile, 0o644), "s.sh": (script, 0o644),
                                                                          "startup-script.sh": (script, 0o600)]))
            #expect(issues.allSatisfy { !$0.code.isEmpty && !$0.message.isEmpty && !$0.fix.isEmpty })
        }
    }

    @Test func scriptFinalNewline() {
        let issues = lint(script: String(Self.goodScript.dropLast()))
        #expect(issues.map(\.code) == ["script-no-final-newline"] && issues[0].line == 4)
    }
}
