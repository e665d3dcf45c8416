namespace MaskRcnn.Net.Core;

/// <summary>
/// Owns every tensor created on this thread while it is the innermost open scope; disposing the scope disposes
/// them, except those moved out with <see cref="MoveToOuter(Tensor)"/> or <see cref="Tensor.DetachFromDisposeScope"/>.
/// Scopes nest per thread: <c>using var scope = Torch.NewDisposeScope();</c>.
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? current;

    private readonly HashSet<Tensor> owned = new(ReferenceEqualityComparer.Instance);
    private readonly DisposeScope? outer;
    private readonly int threadId;
    private bool disposed;

    internal DisposeScope()
    {
        outer = current;
        threadId = Environment.CurrentManagedThreadId;
        current = this;
    }

    /// <summary>The innermost open scope of this thread, or null.</summary>
    public static DisposeScope? Current => current;

    /// <summary>Number of live tensors this scope owns.</summary>
    public int Count => owned.Count;

    internal static void Register(Tensor tensor)
    {
        var scope = current;
        if (scope is not null)
        {
            scope.owned.Add(tensor);
            tensor.Scope = scope;
        }
    }

    internal void Forget(Tensor tensor) => owned.Remove(tensor);

    /// <summary>Moves <paramref name="tensor"/> to the enclosing scope (or to no scope) and returns it.</summary>
    public Tensor MoveToOuter(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (ReferenceEquals(tensor.Scope, this))
        {
            owned.Remove(tensor);
            tensor.Scope = null;
            if (outer is not null && !outer.disposed)
            {
                outer.owned.Add(tensor);
                tensor.Scope = outer;
            }
        }

        return tensor;
    }

    /// <summary>Moves several tensors to the enclosing scope.</summary>
    public void MoveToOuter(params Tensor[] tensors)
    {
        foreach (var t in tensors)
        {
            MoveToOuter(t);
        }
    }

    /// <summary>Disposes every tensor still owned and closes the scope.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        if (Environment.CurrentManagedThreadId != threadId)
        {
            throw new InvalidOperationException("a DisposeScope must be disposed on the thread that opened it");
        }

        disposed = true;
        var items = owned.ToArray();
        owned.Clear();
        foreach (var t in items)
        {
            t.Scope = null;
            t.Dispose();
        }

        // Closing out of order (an inner scope left open) still restores the chain sensibly.
        if (ReferenceEquals(current, this))
        {
            current = outer;
            while (current is not null && current.disposed)
            {
                current = current.outer;
            }
        }
    }
}
