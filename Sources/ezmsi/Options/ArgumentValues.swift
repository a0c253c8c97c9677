import ArgumentParser
import EZMSIChecks
import EZMSICore
import Foundation

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case human, json
}

extension RunMode: ExpressibleByArgument {}
