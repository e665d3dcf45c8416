using System.Collections.Concurrent;
using MaskRcnn.Net.Backbones;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace MaskRcnn.Net.DependencyInjection.Tests;

public sealed class AddMaskRcnnTests : IDisposable
{
    private static readonly string Image = FindImage();
    private readonly string dir = Directory.CreateTempSubdirectory("mr_di_").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    private static string FindImage()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            var p = Path.Combine(d.FullName, "tests", "MaskRcnn.Net.Core.Tests", "Imaging", "data", "00099_154.jpg");
            if (File.Exists(p))
            {
                return p;
            }
        }

        throw new InvalidOperationException("the MRI test image was not found above " + AppContext.BaseDirectory);
    }

    private static MaskRcnnBuilder Small() => new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm).WithClasses("tumor")
        .WithImageSize(128, 160).WithScoreThreshold(0.0).WithSeed(5);

    private sealed class Capture : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, string Message)> Lines { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this);

        public void Dispose()
        {
        }

        private sealed class Logger(Capture owner) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                owner.Lines.Enqueue((logLevel, formatter(state, exception)));
        }
    }

    [Fact]
    public async Task One_lazily_loaded_model_serves_concurrent_calls_and_logs_through_the_container()
    {
        var path = Path.Combine(dir, "model.safetensors");
        ImageDetections expected;
        using (var model = Small().Build())
        {
            model.Save(path);
            expected = model.Predict(Image);
        }

        var capture = new Capture();
        var services = new ServiceCollection().AddLogging(b => b.AddProvider(capture).SetMinimumLevel(LogLevel.Debug))
            .AddMaskRcnn(o => o.ModelPath = path);
        LazyInstanceSegmenter lazy;
        await using (var provider = services.BuildServiceProvider())
        {
            var segmenter = provider.GetRequiredService<IInstanceSegmenter>();
            provider.GetRequiredService<IInstanceSegmenter>().Should().BeSameAs(segmenter, "one model per container");
            lazy = provider.GetRequiredService<LazyInstanceSegmenter>();
            segmenter.Should().BeSameAs(lazy);
            lazy.IsLoaded.Should().BeFalse("nothing is loaded before the first prediction");
            capture.Lines.Should().BeEmpty();

            var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => segmenter.PredictAsync(Image)));
            lazy.IsLoaded.Should().BeTrue();
            foreach (var r in results.Append(segmenter.Predict(Image)))
            {
                r.Detections.Select(d => (d.Label, d.Score, d.Box)).Should().Equal(expected.Detections.Select(d => (d.Label, d.Score, d.Box)));
                r.Detections.Select(d => d.Mask).Should().Equal(expected.Detections.Select(d => d.Mask));
            }

            segmenter.ClassNames.Should().Equal("__background__", "tumor");
            capture.Lines.Count(l => l.Message.StartsWith("loading the Mask R-CNN model " + path, StringComparison.Ordinal)).Should().Be(1, "loaded once for 5 calls");
            capture.Lines.Should().Contain(l => l.Message.Contains("Mask R-CNN ready") && l.Message.Contains("1 classes (tumor)") && l.Message.Contains("ResNet-18"));
        }

        FluentActions.Invoking(() => lazy.Model).Should().Throw<ObjectDisposedException>("the container disposed the model");
    }

    [Fact]
    public async Task A_builder_with_weights_logs_what_kept_its_initialisation()
    {
        // Weights of a 3-class model into a 2-class one: the class-specific predictor layers are skipped for their shape.
        var weights = Path.Combine(dir, "three.safetensors");
        using (var three = new MaskRcnnBuilder().WithBackbone(18, NormKind.FrozenBatchNorm).WithClasses("a", "b").WithImageSize(128, 160).WithSeed(1).Build())
        {
            three.Save(weights);
        }

        var capture = new Capture();
        await using var provider = new ServiceCollection().AddLogging(b => b.AddProvider(capture))
            .AddMaskRcnn(o =>
            {
                o.Builder = () => Small().WithWeights(weights, strict: false, skipShapeMismatches: true);
                o.LoadOnResolve = true;
            }).BuildServiceProvider();
        var lazy = provider.GetRequiredService<LazyInstanceSegmenter>();
        lazy.IsLoaded.Should().BeTrue("LoadOnResolve");
        lazy.Model.WeightsLoadResult.Should().NotBeNull();
        var kept = lazy.Model.WeightsLoadResult!.MissingKeys;
        kept.Should().Contain("roi_heads.box_predictor.cls_score.weight").And.Contain("roi_heads.mask_predictor.mask_fcn_logits.weight");
        capture.Lines.Should().Contain(l => l.Level == LogLevel.Warning && l.Message.Contains($"{kept.Count} weights kept their initialisation")
            && l.Message.Contains("roi_heads.box_predictor.cls_score.weight"));
    }

    [Fact]
    public void Bad_options_fail_clearly_on_resolve()
    {
        using var neither = new ServiceCollection().AddMaskRcnn(_ => { }).BuildServiceProvider();
        FluentActions.Invoking(() => neither.GetRequiredService<IInstanceSegmenter>()).Should().Throw<ArgumentException>().WithMessage("*exactly one of ModelPath*Builder*");

        var missing = Path.Combine(dir, "missing.safetensors");
        using var absent = new ServiceCollection().AddMaskRcnn(o => o.ModelPath = missing).BuildServiceProvider();
        var segmenter = absent.GetRequiredService<IInstanceSegmenter>();
        FluentActions.Invoking(() => segmenter.Predict(Image)).Should().Throw<FileNotFoundException>().WithMessage($"*{missing}*");
    }
}
