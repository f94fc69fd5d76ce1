// swift-tools-version:5.10
// Fine-tunes GPT-2 as in chapters 6 and 7 of "Build a Large Language Model (From Scratch)":
// stage executables (fetch, prepare, train, evaluate) that talk through versioned files on
// disk, and a runner (pipeline) that reads pipeline.yaml.
import PackageDescription

let package = Package(
    name: "llm-finetune",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "fetch", targets: ["fetch"]),
        .executable(name: "prepare", targets: ["prepare"]),
        .executable(name: "pipeline", targets: ["pipeline"]),
        .executable(name: "train", targets: ["train"]),
        .executable(name: "evaluate", targets: ["evaluate"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
    ],
    targets: [
        // C libraries from Debian, found through pkg-config.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CZip", pkgConfig: "libzip", providers: [.apt(["libzip-dev"])]),
        // glibc's mallopt (part of libc: nothing to link).
        .systemLibrary(name: "CMalloc"),
        // Non-variadic wrappers for curl_easy_setopt/getinfo, which Swift cannot call.
        .target(name: "CCurlShim", dependencies: ["CCurl"]),

        // Libraries: all logic lives here.
        .target(name: "ArtifactKit", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "GPT2Tokenizer", dependencies: ["ArtifactKit"]),
        .target(name: "DataPrep", dependencies: ["ArtifactKit", "GPT2Tokenizer"]),
        .target(name: "Fetcher", dependencies: ["ArtifactKit", "CCurl", "CCurlShim", "CZip", "Yams"]),
        .target(name: "PipelineRunner", dependencies: ["ArtifactKit", "DataPrep", "GPT2", "GPT2Tokenizer", "Yams"]),
        .target(name: "GPT2", dependencies: ["ArtifactKit", "COpenBLAS", "CMalloc"]),
        .target(name: "Training", dependencies: ["ArtifactKit", "DataPrep", "GPT2", "GPT2Tokenizer", "CCurl", "CCurlShim"]),

        // Thin command-line tools.
        .executableTarget(name: "fetch", dependencies: ["Fetcher", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "prepare", dependencies: ["DataPrep", "GPT2Tokenizer", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "pipeline", dependencies: ["PipelineRunner", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Benchmark of the tokenizer against tiktoken (run by tools/bench/tokenizer.sh).
        .executableTarget(name: "bench-tokenizer", dependencies: ["GPT2Tokenizer", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // GPT-2 core benchmark (tools/bench/run_gpt2.sh runs it beside PyTorch).
        .executableTarget(name: "bench-gpt2", dependencies: ["GPT2", "Training"]),

        .executableTarget(name: "train", dependencies: ["Training", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "evaluate", dependencies: ["Training", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Tests.
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "ArtifactKitTests", dependencies: ["ArtifactKit", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["GPT2Tokenizer", "TestSupport"]),
        .testTarget(name: "DataPrepTests", dependencies: ["DataPrep", "TestSupport"]),
        .testTarget(name: "FetcherTests", dependencies: ["Fetcher", "TestSupport"]),
        .testTarget(name: "RunnerTests", dependencies: ["PipelineRunner", "TestSupport"]),
        .testTarget(name: "GPT2Tests", dependencies: ["GPT2", "TestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TestSupport"]),
    ]
)
