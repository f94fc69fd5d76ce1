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
        .executable(name: "export", targets: ["export"]),
        .executable(name: "serve", targets: ["serve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
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
        // Open MPI (issue 15): mpi.h and libmpi, and C wrappers for its handle macros (MPI_COMM_WORLD, MPI_FLOAT, ...).
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .target(name: "CMPIShim", dependencies: ["CMPI"]),

        // Libraries: all logic lives here, one domain per module (docs/architecture.md).
        // Files, hashes, manifests, errors, the seeded generator: what every stage shares.
        .target(name: "ArtifactKit", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // HTTP over libcurl: downloads (fetch) and JSON POSTs (the chapter-7 judge).
        .target(name: "CurlClient", dependencies: ["ArtifactKit", "CCurl", "CCurlShim"]),
        .target(name: "Fetcher", dependencies: ["ArtifactKit", "CurlClient", "CZip", "Yams"]),
        .target(name: "GPT2Tokenizer", dependencies: ["ArtifactKit"]),
        // The math of GPT-2 on OpenBLAS; hot loops stay inside this module.
        .target(name: "GPT2", dependencies: ["ArtifactKit", "COpenBLAS", "CMalloc", "Quantization"]),
        // Weights in and out: safetensors, OpenAI's TF checkpoint, checkpoints, random init.
        .target(name: "GPT2Weights", dependencies: ["ArtifactKit", "GPT2", "Quantization"]),
        // Quantized frozen weights (QLoRA): NF4 and int8 formats, their artifact, and the C kernels
        // that read packed codes (AVX2+FMA chosen at run time, scalar otherwise).
        .target(name: "CQuantKernels"),
        .target(name: "Quantization", dependencies: ["ArtifactKit", "CQuantKernels"]),
        // The training loop's bookkeeping: epochs, resume state, log, progress, plots.
        .target(name: "TrainingKit", dependencies: ["ArtifactKit"]),
        // The processes of an `mpirun -np N train` job over MPI (data-parallel training; only `train` links it).
        .target(name: "Distributed", dependencies: ["ArtifactKit", "TrainingKit", "CMPIShim"]),
        // Chapter 6 and chapter 7, each from its raw file to its evaluation.
        .target(name: "Classification", dependencies: ["ArtifactKit", "GPT2", "GPT2Weights", "GPT2Tokenizer", "TrainingKit", "Quantization"]),
        .target(name: "Instruct", dependencies: ["ArtifactKit", "GPT2", "GPT2Weights", "GPT2Tokenizer", "TrainingKit", "CurlClient", "Quantization"]),
        // GGUF export (llama.cpp / Ollama): the GGUF v3 container, its reader, F16 / Q8_0
        // encodings, the gpt2 architecture's tensors and tokenizer metadata, Ollama Modelfiles.
        .target(name: "GGUF", dependencies: ["ArtifactKit", "GPT2", "GPT2Weights", "GPT2Tokenizer"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "GPT2", "GPT2Weights", "GPT2Tokenizer", "Instruct", "TestSupport"]),

        // The runner knows stages, files and hashes, nothing of GPT-2.
        .target(name: "PipelineRunner", dependencies: ["ArtifactKit", "Yams"]),

        // What every command-line tool shares: paths as arguments, errors in our words.
        .target(name: "ToolSupport", dependencies: ["ArtifactKit", .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        // Thin command-line tools.
        .executableTarget(name: "fetch", dependencies: ["Fetcher", "ToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "prepare", dependencies: ["Classification", "Instruct", "GPT2Tokenizer", "ToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "pipeline", dependencies: ["PipelineRunner", "ToolSupport", "Classification", "Instruct", "GPT2Weights", "Quantization", "GGUF", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "train", dependencies: ["Classification", "Instruct", "GPT2", "GPT2Weights", "TrainingKit", "Distributed", "ToolSupport", "Quantization", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "evaluate", dependencies: ["Classification", "Instruct", "GPT2", "GPT2Tokenizer", "TrainingKit", "ToolSupport", "Quantization", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Benchmark of the tokenizer against tiktoken (run by tools/bench/tokenizer.sh).
        .executableTarget(name: "bench-tokenizer", dependencies: ["GPT2Tokenizer", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // GPT-2 core benchmark (tools/bench/run_gpt2.sh runs it beside PyTorch).
        .executableTarget(name: "bench-gpt2", dependencies: ["ArtifactKit", "GPT2", "Quantization", "GPT2Weights", "Classification"]),

        // Export (issue 13): a training run's model for other tools; `export` is its command.
        // ModelExport reads train output folders (TrainOutput), also for other consumers.
        .target(name: "ModelExport", dependencies: ["ArtifactKit", "GPT2", "GPT2Weights", "GPT2Tokenizer", "GGUF", "Instruct"]),
        .executableTarget(name: "export", dependencies: ["ModelExport", "GGUF", "ToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "ModelExportTests", dependencies: ["ModelExport", "GGUF", "Classification", "Instruct", "GPT2", "GPT2Weights", "ArtifactKit", "TestSupport"]),

        // serve: one trained model over HTTP (docs/serve.md). The HTTP layer (Hummingbird) stays in
        // ModelServer; the batching, request shapes and page are its own files there.
        .target(name: "ModelServer", dependencies: ["ArtifactKit", "Classification", "Instruct", "GPT2", "GPT2Tokenizer", .product(name: "Hummingbird", package: "hummingbird"),
                                              .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTPTypes", package: "swift-nio-extras")],
                resources: [.embedInCode("Resources/index.html")]),
        .executableTarget(name: "serve", dependencies: ["Quantization", "GPT2", "ModelServer", "ToolSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .testTarget(name: "ModelServerTests", dependencies: ["ModelServer", "Classification", "Instruct", "GPT2", "GPT2Weights", "GPT2Tokenizer", "TestSupport", .product(name: "Hummingbird", package: "hummingbird")]),

        // Tests.
        .target(name: "TestSupport", dependencies: ["ArtifactKit"], path: "Tests/TestSupport"),
        // The PyTorch golden files (Tests/Fixtures/gpt2-parity, lora-parity) and their comparison,
        // for the language model (GPT2Tests) and the classifier (ClassificationTests).
        .target(name: "GPT2TestSupport", dependencies: ["GPT2", "GPT2Weights", "TestSupport"], path: "Tests/GPT2TestSupport"),
        .testTarget(name: "ArtifactKitTests", dependencies: ["ArtifactKit", "TestSupport"]),
        .testTarget(name: "TokenizerTests", dependencies: ["GPT2Tokenizer", "TestSupport"]),
        .testTarget(name: "FetcherTests", dependencies: ["Fetcher", "CurlClient", "TestSupport", "GPT2TestSupport"]),
        // No GPT-2 and no OpenBLAS here: the runner is tested on its own.
        .testTarget(name: "RunnerTests", dependencies: ["PipelineRunner", "ArtifactKit", "TestSupport"]),
        .testTarget(name: "QuantizationTests", dependencies: ["Quantization", "TestSupport"]),
        .testTarget(name: "TrainingKitTests", dependencies: ["TrainingKit", "ArtifactKit", "TestSupport"]),
        .testTarget(name: "GPT2Tests", dependencies: ["GPT2", "GPT2Weights", "TestSupport", "GPT2TestSupport"]),
        .testTarget(name: "ClassificationTests", dependencies: ["Classification", "GPT2", "GPT2Weights", "GPT2Tokenizer", "TrainingKit", "TestSupport", "GPT2TestSupport", "Quantization"]),
        .testTarget(name: "InstructTests", dependencies: ["Instruct", "Classification", "GPT2", "GPT2Weights", "GPT2Tokenizer", "TrainingKit", "CurlClient", "TestSupport", "GPT2TestSupport"]),
    ]
)
