using System.Runtime.InteropServices;

namespace MaskRcnn.Net.Core;

/// <summary>
/// An n-dimensional array on a <see cref="Device"/>, backed by a libtorch tensor that this object owns through a
/// SafeHandle. Dispose it, or create it inside a <see cref="DisposeScope"/>; views share storage with their base.
/// </summary>
public sealed partial class Tensor : IDisposable
{
    private readonly TensorHandle handle;

    internal Tensor(nint native)
    {
        handle = new TensorHandle(Native.Check(native));
        DisposeScope.Register(this);
    }

    internal DisposeScope? Scope { get; set; }

    internal TensorHandle Handle => handle.IsClosed ? throw new ObjectDisposedException(nameof(Tensor)) : handle;

    internal static TensorHandle HandleOf(Tensor? t) => t is null ? TensorHandle.Null : t.Handle;

    /// <summary>True once the tensor has been disposed.</summary>
    public bool IsDisposed => handle.IsClosed;

    /// <summary>Releases the native tensor now (idempotent).</summary>
    public void Dispose()
    {
        if (handle.IsClosed)
        {
            return;
        }

        Scope?.Forget(this);
        Scope = null;
        handle.Dispose();
    }

    /// <summary>Removes this tensor from its dispose scope: the caller now owns it.</summary>
    public Tensor DetachFromDisposeScope()
    {
        Scope?.Forget(this);
        Scope = null;
        return this;
    }

    /// <summary>Moves this tensor to the scope enclosing its current one.</summary>
    public Tensor MoveToOuterDisposeScope() => Scope is null ? this : Scope.MoveToOuter(this);

    // ---- metadata ----------------------------------------------------------------------------------------------

    /// <summary>Number of dimensions.</summary>
    public int Dim => Native.Check(NativeMethods.mr_dim(Handle));

    /// <summary>Size of each dimension.</summary>
    public unsafe long[] Shape
    {
        get
        {
            Span<long> buf = stackalloc long[16];
            int n;
            fixed (long* p = buf)
            {
                n = Native.Check(NativeMethods.mr_shape(Handle, p, buf.Length));
            }

            if (n <= buf.Length)
            {
                return buf[..n].ToArray();
            }

            var big = new long[n];
            fixed (long* p = big)
            {
                Native.Check(NativeMethods.mr_shape(Handle, p, n));
            }

            return big;
        }
    }

    /// <summary>Size of dimension <paramref name="dim"/> (negative counts from the end).</summary>
    public long Size(int dim)
    {
        var s = Shape;
        var d = dim < 0 ? dim + s.Length : dim;
        if (d < 0 || d >= s.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(dim), dim, $"tensor has {s.Length} dimensions");
        }

        return s[d];
    }

    /// <summary>Element strides of each dimension.</summary>
    public unsafe long[] Strides
    {
        get
        {
            var n = Dim;
            var s = new long[n];
            fixed (long* p = s)
            {
                Native.Check(NativeMethods.mr_strides(Handle, p, n));
            }

            return s;
        }
    }

    /// <summary>Offset of the first element in the underlying storage, in elements.</summary>
    public long StorageOffset => Native.Check(NativeMethods.mr_storage_offset(Handle));

    /// <summary>Total number of elements.</summary>
    public long NumEl => Native.Check(NativeMethods.mr_numel(Handle));

    /// <summary>Element type.</summary>
    public DType DType => (DType)Native.Check(NativeMethods.mr_dtype(Handle));

    /// <summary>The device holding the data.</summary>
    public Device Device
    {
        get
        {
            Native.Check(NativeMethods.mr_device(Handle, out var type, out var index));
            return new Device((DeviceType)type, index);
        }
    }

    /// <summary>True when the elements are laid out densely in row-major order.</summary>
    public bool IsContiguous => Native.Check(NativeMethods.mr_is_contiguous(Handle)) == 1;

    /// <summary>Whether the elements are laid out densely in <paramref name="format"/>'s order.</summary>
    public bool IsContiguousIn(MemoryFormat format) => Native.Check(NativeMethods.mr_is_contiguous_format(Handle, (int)format)) == 1;

    /// <summary>
    /// This tensor laid out in <paramref name="format"/> (itself, as a new handle, when it already is). Channels-last
    /// needs a 4-d tensor; shape and values are unchanged, only the strides differ.
    /// </summary>
    public Tensor Contiguous(MemoryFormat format) => new(NativeMethods.mr_contiguous_format(Handle, (int)format));

    /// <summary>libtorch's printout of the tensor.</summary>
    public override string ToString() =>
        handle.IsClosed ? "Tensor(disposed)" : Native.TakeString(NativeMethods.mr_to_string(Handle));

    // ---- creation ----------------------------------------------------------------------------------------------

    private static unsafe void CheckShape(ReadOnlySpan<long> shape, long count, string what)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"shape [{string.Join(", ", shape.ToArray())}] has a negative size", nameof(shape));
            }

            n = checked(n * d);
        }

        if (n != count)
        {
            throw new ArgumentException(
                $"shape [{string.Join(", ", shape.ToArray())}] needs {n} elements but {what} has {count}", nameof(shape));
        }
    }

    /// <summary>Copies a .NET array into a new tensor of the matching dtype and the given shape (default: 1-D).</summary>
    public static Tensor FromArray<T>(T[] data, params long[] shape) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(data);
        return FromSpan<T>(data, shape.Length == 0 ? [data.LongLength] : shape);
    }

    /// <summary>Copies a span into a new tensor of the matching dtype and shape, optionally on another device.</summary>
    public static unsafe Tensor FromSpan<T>(ReadOnlySpan<T> data, ReadOnlySpan<long> shape, Device? device = null)
        where T : unmanaged
    {
        CheckShape(shape, data.Length, "the data");
        var dev = device ?? Device.Cpu;
        fixed (T* p = data)
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_from_data(p, s, shape.Length, (int)DTypeInfo.Of<T>(), (int)dev.Type, dev.Index));
        }
    }

    /// <summary>Creates a tensor from raw little-endian element bytes of <paramref name="dtype"/>.</summary>
    public static unsafe Tensor FromBytes(ReadOnlySpan<byte> bytes, DType dtype, ReadOnlySpan<long> shape, Device? device = null)
    {
        var size = dtype.ElementSize();
        if (bytes.Length % size != 0)
        {
            throw new ArgumentException($"{bytes.Length} bytes is not a whole number of {dtype} elements", nameof(bytes));
        }

        CheckShape(shape, bytes.Length / size, "the byte buffer");
        var dev = device ?? Device.Cpu;
        fixed (byte* p = bytes)
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_from_data(p, s, shape.Length, (int)dtype, (int)dev.Type, dev.Index));
        }
    }

    /// <summary>A 0-dimensional tensor holding one value.</summary>
    public static Tensor Scalar(double value, DType dtype = DType.Float32, Device? device = null) =>
        Full([], value, dtype, device);

    /// <summary>A 0-dimensional integer tensor holding one value.</summary>
    public static Tensor Scalar(long value, DType dtype = DType.Int64, Device? device = null) =>
        Full([], value, dtype, device);

    /// <summary>Uninitialised tensor.</summary>
    public static unsafe Tensor Empty(ReadOnlySpan<long> shape, DType dtype = DType.Float32, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_empty(s, shape.Length, (int)dtype, (int)dev.Type, dev.Index));
        }
    }

    /// <summary>Tensor filled with <paramref name="value"/>.</summary>
    public static unsafe Tensor Full(ReadOnlySpan<long> shape, double value, DType dtype = DType.Float32, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_full(s, shape.Length, value, (long)value, 0, (int)dtype, (int)dev.Type, dev.Index));
        }
    }

    /// <summary>Integer-valued fill (exact for 64-bit integers).</summary>
    public static unsafe Tensor Full(ReadOnlySpan<long> shape, long value, DType dtype, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_full(s, shape.Length, value, value, 1, (int)dtype, (int)dev.Type, dev.Index));
        }
    }

    /// <summary>Zeros.</summary>
    public static Tensor Zeros(ReadOnlySpan<long> shape, DType dtype = DType.Float32, Device? device = null) =>
        Full(shape, 0L, dtype, device);

    /// <summary>Ones.</summary>
    public static Tensor Ones(ReadOnlySpan<long> shape, DType dtype = DType.Float32, Device? device = null) =>
        Full(shape, 1L, dtype, device);

    /// <summary>Zeros with this tensor's shape, dtype and device.</summary>
    public Tensor ZerosLike() => Zeros(Shape, DType, Device);

    /// <summary>Ones with this tensor's shape, dtype and device.</summary>
    public Tensor OnesLike() => Ones(Shape, DType, Device);

    /// <summary>Values start, start+step, … below end.</summary>
    public static Tensor Arange(double start, double end, double step = 1, DType dtype = DType.Float32, Device? device = null)
    {
        if (step == 0 || double.IsNaN(step))
        {
            throw new ArgumentException("step must be non-zero", nameof(step));
        }

        var dev = device ?? Device.Cpu;
        return new Tensor(NativeMethods.mr_arange(start, end, step, (int)dtype, (int)dev.Type, dev.Index));
    }

    /// <summary>0, 1, …, end-1 as int64.</summary>
    public static Tensor Arange(long end, Device? device = null) => Arange(0, end, 1, DType.Int64, device);

    /// <summary><paramref name="steps"/> evenly spaced values from start to end inclusive.</summary>
    public static Tensor Linspace(double start, double end, long steps, DType dtype = DType.Float32, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        return new Tensor(NativeMethods.mr_linspace(start, end, steps, (int)dtype, (int)dev.Type, dev.Index));
    }

    /// <summary>Uniform random values in [0, 1). Drawn from <see cref="RandomGenerator.Current"/> when one is in use.</summary>
    public static unsafe Tensor Rand(ReadOnlySpan<long> shape, DType dtype = DType.Float32, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_rand(s, shape.Length, 0, (int)dtype, (int)dev.Type, dev.Index, RandomGenerator.CurrentHandle(dev)));
        }
    }

    /// <summary>Standard normal random values. Drawn from <see cref="RandomGenerator.Current"/> when one is in use.</summary>
    public static unsafe Tensor Randn(ReadOnlySpan<long> shape, DType dtype = DType.Float32, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_rand(s, shape.Length, 1, (int)dtype, (int)dev.Type, dev.Index, RandomGenerator.CurrentHandle(dev)));
        }
    }

    /// <summary>Random integers in [low, high). Drawn from <see cref="RandomGenerator.Current"/> when one is in use.</summary>
    public static unsafe Tensor RandInt(long low, long high, ReadOnlySpan<long> shape, DType dtype = DType.Int64, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        fixed (long* s = shape)
        {
            return new Tensor(NativeMethods.mr_randint(low, high, s, shape.Length, (int)dtype, (int)dev.Type, dev.Index, RandomGenerator.CurrentHandle(dev)));
        }
    }

    /// <summary>A random permutation of 0..n-1 (int64). Drawn from <see cref="RandomGenerator.Current"/> when one is in use.</summary>
    public static Tensor RandPerm(long n, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        return new Tensor(NativeMethods.mr_randperm(n, (int)dev.Type, dev.Index, RandomGenerator.CurrentHandle(dev)));
    }

    /// <summary>n×n identity matrix.</summary>
    public static Tensor Eye(long n, DType dtype = DType.Float32, Device? device = null)
    {
        var dev = device ?? Device.Cpu;
        return new Tensor(NativeMethods.mr_eye(n, (int)dtype, (int)dev.Type, dev.Index));
    }

    // ---- data out ----------------------------------------------------------------------------------------------

    /// <summary>Copies the elements (row-major, converted to <typeparamref name="T"/>, fetched from any device).</summary>
    public unsafe T[] ToArray<T>() where T : unmanaged
    {
        var result = new T[NumEl];
        CopyTo<T>(result);
        return result;
    }

    /// <summary>Copies the elements (row-major, converted to <typeparamref name="T"/>) into <paramref name="destination"/>.</summary>
    public unsafe void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        var n = NumEl;
        if (destination.Length != n)
        {
            throw new ArgumentException($"destination holds {destination.Length} elements, tensor has {n}", nameof(destination));
        }

        fixed (T* p = destination)
        {
            Native.Check(NativeMethods.mr_copy_to(Handle, (int)DTypeInfo.Of<T>(), p, n * sizeof(T)));
        }
    }

    /// <summary>The raw little-endian bytes of the elements in this tensor's own dtype, row-major.</summary>
    public unsafe byte[] ToBytes()
    {
        var dtype = DType;
        var result = new byte[NumEl * dtype.ElementSize()];
        fixed (byte* p = result)
        {
            Native.Check(NativeMethods.mr_copy_to(Handle, (int)dtype, p, result.LongLength));
        }

        return result;
    }

    /// <summary>
    /// A span over the memory of a contiguous CPU tensor (no copy; writes go to the tensor). Valid only while the
    /// tensor is alive.
    /// </summary>
    public unsafe Span<T> AsSpan<T>() where T : unmanaged
    {
        if (DTypeInfo.Of<T>() != DType)
        {
            throw new InvalidOperationException($"tensor dtype is {DType}, span type is {typeof(T).Name}");
        }

        var p = Native.Check(NativeMethods.mr_data_ptr(Handle));
        return new Span<T>((void*)p, checked((int)NumEl));
    }

    /// <summary>The single value of a one-element tensor as a double.</summary>
    public double ItemDouble()
    {
        Native.Check(NativeMethods.mr_item(Handle, out var d, out _));
        return d;
    }

    /// <summary>The single value of a one-element tensor as an int64.</summary>
    public long ItemLong()
    {
        Native.Check(NativeMethods.mr_item(Handle, out _, out var i));
        return i;
    }

    /// <summary>The single value of a one-element tensor as a float.</summary>
    public float ItemFloat() => (float)ItemDouble();

    /// <summary>The single value of a one-element boolean tensor.</summary>
    public bool ItemBool() => ItemLong() != 0;

    // ---- conversion --------------------------------------------------------------------------------------------

    /// <summary>Converts to another dtype (returns an alias when already of that dtype).</summary>
    public Tensor To(DType dtype)
    {
        var dev = Device;
        return new Tensor(NativeMethods.mr_to(Handle, (int)dtype, (int)dev.Type, dev.Index, 0));
    }

    /// <summary>Moves to another device (returns an alias when already there).</summary>
    public Tensor To(Device device) => To(device, DType);

    /// <summary>Moves to a device and converts the dtype in one step.</summary>
    public Tensor To(Device device, DType dtype, bool copy = false) =>
        new(NativeMethods.mr_to(Handle, (int)dtype, (int)device.Type, device.Index, copy ? 1 : 0));

    /// <summary>A new handle to the same tensor (shares data, autograd history and lifetime of the storage).</summary>
    public Tensor Alias() => new(NativeMethods.mr_alias(Handle));

    // ---- autograd ----------------------------------------------------------------------------------------------

    /// <summary>Whether autograd records operations on this tensor.</summary>
    public bool RequiresGrad
    {
        get => Native.Check(NativeMethods.mr_requires_grad(Handle)) == 1;
        set => Native.Check(NativeMethods.mr_set_requires_grad(Handle, value ? 1 : 0));
    }

    /// <summary>Sets <see cref="RequiresGrad"/> and returns this tensor.</summary>
    public Tensor RequiresGrad_(bool requiresGrad = true)
    {
        RequiresGrad = requiresGrad;
        return this;
    }

    /// <summary>The accumulated gradient (a new handle owned by the caller/scope), or null when none exists.</summary>
    public Tensor? Grad
    {
        get
        {
            var g = NativeMethods.mr_grad(Handle);
            if (g == 0)
            {
                Native.ThrowIfError();
                return null;
            }

            return new Tensor(g);
        }
        set => Native.Check(NativeMethods.mr_set_grad(Handle, HandleOf(value)));
    }

    /// <summary>Computes gradients of this (scalar, unless <paramref name="gradient"/> is given) tensor.</summary>
    public void Backward(Tensor? gradient = null, bool retainGraph = false, bool createGraph = false) =>
        Native.Check(NativeMethods.mr_backward(Handle, HandleOf(gradient), retainGraph ? 1 : 0, createGraph ? 1 : 0));

    /// <summary>A view that shares data but is cut from the autograd graph.</summary>
    public Tensor Detach() => new(NativeMethods.mr_detach(Handle));

    /// <summary>Replaces this tensor's data (shape, dtype, device) with <paramref name="source"/>'s, keeping the object.</summary>
    internal void SetData(Tensor source) => Native.Check(NativeMethods.mr_set_data(Handle, source.Handle));

    /// <summary>True for tensors created by the user (not by a recorded operation).</summary>
    public bool IsLeaf => Native.Check(NativeMethods.mr_is_leaf(Handle)) == 1;

    /// <summary>True for tensors created in inference mode.</summary>
    public bool IsInference => Native.Check(NativeMethods.mr_is_inference(Handle)) == 1;

    internal static unsafe nint[] Handles(IReadOnlyList<Tensor?> tensors, bool allowNull = false)
    {
        var hs = new nint[tensors.Count];
        for (var k = 0; k < hs.Length; k++)
        {
            var t = tensors[k];
            if (t is null)
            {
                if (!allowNull)
                {
                    throw new ArgumentNullException(nameof(tensors), $"tensor #{k} is null");
                }

                continue;
            }

            hs[k] = t.Handle.DangerousGetHandle();
        }

        return hs;
    }
}
