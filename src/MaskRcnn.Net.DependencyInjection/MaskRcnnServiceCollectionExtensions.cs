using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace MaskRcnn.Net.DependencyInjection;

/// <summary>Registration of a MaskRcnn.Net model in a service container.</summary>
public static class MaskRcnnServiceCollectionExtensions
{
    /// <summary>
    /// Registers one model as a singleton <see cref="IInstanceSegmenter"/> (and <see cref="LazyInstanceSegmenter"/>):
    /// thread-safe, loaded on first use (or on resolve, <see cref="MaskRcnnServiceOptions.LoadOnResolve"/>), logging
    /// through the container's <c>ILogger&lt;LazyInstanceSegmenter&gt;</c> (add logging to the container; without it
    /// nothing is logged). <c>services.AddMaskRcnn(o => o.ModelPath = "run/model.safetensors")</c>.
    /// </summary>
    /// <exception cref="ArgumentException">On resolve: the options name neither or both model sources.</exception>
    public static IServiceCollection AddMaskRcnn(this IServiceCollection services, Action<MaskRcnnServiceOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<MaskRcnnServiceOptions>().Configure(configure);
        services.TryAddSingleton<LazyInstanceSegmenter>();
        services.TryAddSingleton<IInstanceSegmenter>(sp => sp.GetRequiredService<LazyInstanceSegmenter>());
        return services;
    }
}
